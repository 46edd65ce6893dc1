import { backoffDelay } from '@mpd/server-kit';
import type { Logger } from 'pino';
import { ModuleHost, type ModuleHostOptions } from './module-host.js';
import type { GroupStop } from './process-group.js';

/** Options of a {@link ModuleHostPool}. */
export interface ModuleHostPoolOptions extends ModuleHostOptions {
  /** How many hosts the pool keeps: one per worker slot. */
  size: number;
  logger: Logger;
}

/** First and longest delay before starting a host again after one failed to start (ms). */
const START_RETRY_MS = { initial: 1_000, max: 30_000 };

/**
 * The worker's module hosts: `size` of them, started ahead of any execute call and reused,
 * so that dispatching a module costs one message on the host channel (fd 3), not a process start (Jest's and
 * Piscina's pools work the same way). A host that ended its execution cleanly goes back to the
 * pool; one that was cancelled, timed out, crashed or left processes behind is retired: its
 * process group is stopped, and a fresh host is started in its place.
 *
 * Each host handed out for an execution holds the worker's lease (see
 * {@link ModuleHostPool.renewLease}) until it is back in the pool or its group is stopped: a
 * host whose lease ends kills its group, and no kill grace runs past the lease's end. Every host
 * knows the lease (each renewal is written to all); whether it holds it, its own main thread
 * knows (it runs the module), so handing a host out and taking it back write nothing to it.
 */
export class ModuleHostPool {
  private readonly idle: ModuleHost[] = [];
  private readonly hosts = new Set<ModuleHost>();
  private readonly waiting: { resolve: (host: ModuleHost) => void; reject: (error: unknown) => void }[] = [];
  private readonly stops = new Set<Promise<GroupStop>>();
  private failedStarts = 0;
  private closed = false;
  /** When the worker's lease ends (ms on `monotonicNow()`'s clock); undefined while it has none. */
  private leaseEnd: number | undefined;
  /** The hosts that hold the lease: handed out for an execution, not yet back or stopped. */
  private readonly leased = new Set<ModuleHost>();

  /**
   * Resolves once each of the hosts started with the pool is ready or failed to start: a worker
   * registers after it, so that its first modules do not wait for a process start.
   */
  readonly started: Promise<void>;

  constructor(private readonly options: ModuleHostPoolOptions) {
    const first: Promise<void>[] = [];
    for (let index = 0; index < options.size; index++) first.push(this.startHost().ready.catch(() => undefined));
    this.started = Promise.all(first).then(() => undefined);
  }

  /** Hosts started and not retired (ready, running or starting). */
  get size(): number {
    return this.hosts.size;
  }

  /**
   * A ready host for one execution: an idle one at once, else the next one that becomes ready.
   * @throws (rejects) `signal.reason` when the signal aborts first; the start error when a host
   *   cannot start (the pipeline file no longer loads); an Error once the pool is closed.
   */
  acquire(signal: AbortSignal): Promise<ModuleHost> {
    if (this.closed) return Promise.reject(new Error('The worker is stopping: no module host takes new modules'));
    const host = this.acquireIdle();
    if (host) return Promise.resolve(host);
    return new Promise<ModuleHost>((resolve, reject) => {
      const waiter = {
        resolve: (ready: ModuleHost) => {
          signal.removeEventListener('abort', onAbort);
          resolve(this.handOut(ready));
        },
        reject: (error: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      const onAbort = (): void => {
        this.waiting.splice(this.waiting.indexOf(waiter), 1);
        reject(signal.reason);
      };
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  /**
   * An idle host for one execution, handed out now; undefined when none is idle (or the pool is
   * closed): then {@link ModuleHostPool.acquire} waits for one. No promise and no signal: a
   * module usually finds a host idle (issue 14).
   */
  acquireIdle(): ModuleHost | undefined {
    if (this.closed) return undefined;
    // The most recently used host first: its code is warm.
    const host = this.idle.pop();
    return host === undefined ? undefined : this.handOut(host);
  }

  /**
   * The worker's lease now ends at `endsAt` (ms on `monotonicNow()`'s clock; undefined: it has
   * none): every host is told at once, idle, starting, running a module or being stopped (only
   * those running a module or being stopped after one hold it), and so is each host started
   * later. The worker calls it each time its heartbeat lease is renewed, and only then.
   */
  renewLease(endsAt: number | undefined): void {
    this.leaseEnd = endsAt;
    for (const host of this.hosts) host.lease(endsAt);
    for (const host of this.leased) host.lease(endsAt); // retired ones being stopped
  }

  /** A host leaves the pool for an execution: it holds the lease from now on (its module's message says which). */
  private handOut(host: ModuleHost): ModuleHost {
    this.leased.add(host);
    host.lease(this.leaseEnd);
    return host;
  }

  /** Gives back a host whose execution ended cleanly: the next execution gets it. */
  release(host: ModuleHost): void {
    if (this.closed || !host.usable) {
      void this.retire(host);
      return;
    }
    // Idle, it runs nothing that must stop with the lease (the host itself stopped holding it).
    this.leased.delete(host);
    const waiter = this.waiting.shift();
    if (waiter) waiter.resolve(host);
    else this.idle.push(host);
  }

  /**
   * Stops a host and every process of its group (SIGTERM, SIGKILL after `graceMs`, or at the
   * end of the worker's lease if that comes first: the lease as it is then, renewals included)
   * and starts a fresh one in its place. Resolves once none of the group's processes runs.
   * @param graceMs SIGTERM to SIGKILL (ms); 0: SIGKILL at once (a host that had its grace
   *   already, `hosted-execution.ts`) @default the kill grace (`--kill-grace`)
   */
  retire(host: ModuleHost, graceMs = this.options.killGraceMs): Promise<GroupStop> {
    const index = this.idle.indexOf(host);
    if (index >= 0) this.idle.splice(index, 1);
    const wasMember = this.hosts.delete(host);
    if (this.leased.has(host)) host.holdLease();
    const stopping = host.stop(graceMs, () => (this.leased.has(host) ? this.leaseEnd : undefined));
    this.stops.add(stopping);
    void stopping.finally(() => {
      this.stops.delete(stopping);
      this.leased.delete(host);
    });
    if (wasMember && !this.closed) this.startHost();
    return stopping;
  }

  /**
   * Takes no more executions and stops every host with its group (idle hosts exit at once; a
   * running module is expected to have been cancelled). Resolves once no process of any host's
   * group runs.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of this.waiting.splice(0)) {
      waiter.reject(new Error('The worker is stopping: no module host takes new modules'));
    }
    for (const host of [...this.hosts]) void this.retire(host);
    await Promise.all([...this.stops]);
  }

  private startHost(): ModuleHost {
    const { size: _size, ...hostOptions } = this.options;
    const host = new ModuleHost(hostOptions);
    host.lease(this.leaseEnd);
    this.hosts.add(host);
    host.ready.then(
      () => {
        this.failedStarts = 0;
        this.release(host);
      },
      (error: unknown) => {
        this.hosts.delete(host);
        this.options.logger.error(
          { err: error, attempt: this.failedStarts + 1 },
          'a module host could not start; starting another after a delay',
        );
        // A waiting execution fails with the reason rather than waiting for a host that may never come.
        this.waiting.shift()?.reject(error);
        const delay = backoffDelay(this.failedStarts++, START_RETRY_MS.initial, START_RETRY_MS.max);
        setTimeout(() => {
          if (!this.closed) this.startHost();
        }, delay).unref();
        void this.retire(host);
      },
    );
    // A host that dies while idle (an error escaping code an earlier module left running, a
    // signal from outside) is replaced; its group may still hold that module's processes.
    void host.exited.then(() => {
      if (this.idle.includes(host)) void this.retire(host);
    });
    return host;
  }
}
