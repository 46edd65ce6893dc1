import { longSleep } from '@mpd/contract/timers';
import type { Logger } from 'pino';
import type { ModuleExecutor } from './executor/module-executor.js';
import type { LinkEnd, OrchestratorLink } from './registration/orchestrator-link.js';

/** A worker's lifecycle. */
export type WorkerState =
  /** Takes modules. */
  | 'running'
  /**
   * Fenced: no heartbeat acknowledged by its lease's renew deadline (the orchestrator's
   * heartbeat timeout less the fence lead), so the orchestrator gives its modules to others when
   * the lease ends; it cancelled them and takes no new ones until a heartbeat is acknowledged
   * again (then `running`).
   */
  | 'fenced'
  /** Takes no new modules; finishes the running ones, then stops. */
  | 'draining'
  /** Unregistering and closing. */
  | 'stopping'
  | 'stopped';

/** Why a worker stopped (what {@link WorkerLifecycle.stopped} resolves to). */
export type WorkerExit =
  /** It was asked to: `close()`, `drain()`, a signal, or a drain from the orchestrator. */
  | { reason: 'stopped' }
  /**
   * The orchestrator refused its registration as invalid (400): a setting or the pipeline's
   * module names; the same registration would be refused again. `message` is the orchestrator's.
   */
  | { reason: 'registration-refused'; message: string }
  /**
   * Another process registered under its id (409 `WorkerReplaced` to a heartbeat): it cancelled
   * what it ran and stopped, without unregistering (the id is the other process's).
   */
  | { reason: 'replaced'; message: string };

/** What a {@link WorkerLifecycle} stops, in order: the executor, the link, then the rest. */
export interface WorkerLifecycleParts {
  executor: ModuleExecutor;
  /** The link to the orchestrator, if one is configured. */
  link: OrchestratorLink | undefined;
  /** Closes what is left once the link stopped: the orchestrator client, then the HTTP server. */
  close: () => Promise<void>;
  logger: Logger;
}

/** Moves a worker from `running` to `stopped`, through `draining` or straight to `stopping`. */
export class WorkerLifecycle {
  private current: WorkerState = 'running';
  private draining: Promise<void> | undefined;
  private shuttingDown: Promise<void> | undefined;
  private exit: WorkerExit = { reason: 'stopped' };
  private readonly resolveStopped: (exit: WorkerExit) => void;
  /** Resolves once the worker stopped, with why. */
  readonly stopped: Promise<WorkerExit>;

  constructor(private readonly parts: WorkerLifecycleParts) {
    let resolveStopped!: (exit: WorkerExit) => void;
    this.stopped = new Promise<WorkerExit>((resolve) => (resolveStopped = resolve));
    this.resolveStopped = resolveStopped;
  }

  get state(): WorkerState {
    return this.current;
  }

  /**
   * The heartbeat lease expired: cancels every running module with `reason` and takes no new
   * ones until {@link WorkerLifecycle.unfence}. A draining or stopping worker cancels them too
   * and goes on stopping.
   */
  fence(reason: string): void {
    this.parts.executor.fence(reason);
    if (this.current === 'running') this.current = 'fenced';
  }

  /** A heartbeat was acknowledged again: takes modules again. */
  unfence(): void {
    this.parts.executor.unfence();
    if (this.current === 'fenced') this.current = 'running';
  }

  /**
   * The link to the orchestrator ended for good. Replaced: cancels every running module at once
   * (the orchestrator gave them up when the other process registered) and stops. Refused: stops
   * as {@link WorkerLifecycle.shutDown} does, with `graceMs`. Either way {@link WorkerLifecycle.stopped}
   * resolves with the reason.
   */
  end(end: LinkEnd, graceMs: number): Promise<void> {
    if (this.exit.reason === 'stopped') {
      this.exit =
        end.status === 'replaced'
          ? { reason: 'replaced', message: end.message }
          : { reason: 'registration-refused', message: end.message };
    }
    if (end.status === 'replaced') {
      this.parts.executor.cancelAll(`worker replaced: ${end.message}`);
      return this.shutDown(0);
    }
    return this.shutDown(graceMs);
  }

  /**
   * Takes no new modules, tells the orchestrator, lets every running module finish, then shuts
   * down. Once: later calls (and calls after a shutdown began) get the same promise.
   */
  drain(): Promise<void> {
    return (this.draining ??= (async () => {
      if (this.current !== 'running' && this.current !== 'fenced') return;
      const { executor, link, logger } = this.parts;
      this.current = 'draining';
      logger.info({ running: executor.load }, 'draining: finishing running modules, taking no new ones');
      executor.drain();
      await link?.announceDrain();
      await executor.idle();
      await this.shutDown(0);
    })());
  }

  /**
   * Unregisters and closes (once nothing runs, or after cancelling what still does): takes no
   * new modules, lets running modules finish for `graceMs`, cancels the rest. Once: later calls
   * get the same promise.
   */
  shutDown(graceMs: number): Promise<void> {
    return (this.shuttingDown ??= (async () => {
      const { executor, link, logger } = this.parts;
      this.current = 'stopping';
      executor.drain();
      if (executor.load > 0) await link?.announceDrain();
      const idle = executor.idle();
      // The grace period is the user's (`shutdownGraceMs`, `close(graceMs)`): any length.
      const graceOver = new AbortController();
      const timer = longSleep(graceMs, graceOver.signal, { unref: true });
      const first = await Promise.race([idle.then(() => 'idle'), timer]);
      graceOver.abort();
      if (first !== 'idle') {
        logger.warn({ running: executor.load }, 'shutdown grace period over; cancelling running modules');
      }
      // Cancels what still runs and stops the module hosts: resolves once no process of any
      // module runs (in-process modules that ignore their signal: after 5 s at most).
      await executor.close('worker shutting down');
      await link?.stop();
      await this.parts.close();
      this.current = 'stopped';
      this.resolveStopped(this.exit);
    })());
  }
}
