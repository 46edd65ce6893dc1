import {
  InMemoryNodeRegistry,
  startOrchestrator,
  type RunningOrchestrator,
  type StartOrchestratorOptions,
} from '@mpd/orchestrator';
import { TestClock } from '@mpd/test-kit';
import { startWorker, type RunningWorker, type WorkerOptions } from '@mpd/worker';
import pino from 'pino';

export const silent = pino({ level: 'silent' });

/**
 * The cluster's heartbeat timeout (ms): far longer than any test, so that a worker goes
 * `Offline` only when a test moves {@link Cluster.clock} past it (workers, which fence
 * themselves by the same timeout on their own real clock, never fence in a test by accident).
 */
export const HEARTBEAT_TIMEOUT_MS = 60_000;

/** The join and admin tokens of the tests' secured orchestrators (long enough for every length check). */
export const JOIN_TOKEN = 'join-token-0123456789abcdef';
export const ADMIN_TOKEN = 'admin-token-0123456789abcdef';

/** Everything a test started, closed by {@link Cluster.close}. */
export class Cluster {
  readonly workers: RunningWorker[] = [];
  orchestrator!: RunningOrchestrator;
  /** The registry's clock: `clock.advance(HEARTBEAT_TIMEOUT_MS + 1)` makes silent workers `Offline` at the next sweep. */
  readonly clock = new TestClock();

  async startOrchestrator(options: StartOrchestratorOptions = {}): Promise<RunningOrchestrator> {
    const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? HEARTBEAT_TIMEOUT_MS;
    this.orchestrator = await startOrchestrator({
      port: 0,
      host: '127.0.0.1',
      heartbeatIntervalSeconds: 0.2,
      heartbeatTimeoutMs,
      registry: new InMemoryNodeRegistry({ heartbeatTimeoutMs, now: this.clock.now }),
      sweepIntervalMs: 50,
      validateResponses: true,
      logger: silent,
      ...options,
    });
    return this.orchestrator;
  }

  /**
   * Makes every worker but `live` `Offline` now: moves the clock past the heartbeat timeout,
   * records a heartbeat for each of `live` with its current load (as its next one would), and
   * sweeps the registry, all in the same tick, so that the `offline` events are emitted before
   * anything else can happen. A heartbeat of another worker already on its way (sent before its
   * heartbeats were stopped) lands after the sweep, not between the clock's move and the next
   * sweep of the orchestrator's own timer, where it made that worker live at the moved clock and
   * it never went `Offline` (each worker heartbeats every 0.2 s here). It may still make it live
   * again afterwards: its attempts were lost at the `offline` event all the same.
   * @returns the ids the sweep made `Offline`
   */
  expireAllBut(...live: RunningWorker[]): string[] {
    const registry = this.orchestrator.registry;
    this.clock.advance(registry.heartbeatTimeoutMs + 1);
    for (const worker of live) registry.heartbeat(worker.id, registry.get(worker.id)?.currentLoad ?? 0);
    return registry.sweep();
  }

  async startWorker(options: WorkerOptions = {}): Promise<RunningWorker> {
    const worker = await startWorker({
      port: 0,
      host: '127.0.0.1',
      orchestratorUrl: this.orchestrator?.url,
      slots: 2,
      validateResponses: true,
      logger: silent,
      shutdownGraceMs: 200,
      initialBackoffMs: 50,
      maxBackoffMs: 200,
      tools: ['node'],
      ...options,
    });
    this.workers.push(worker);
    return worker;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.close()));
    await this.orchestrator?.close();
  }
}
