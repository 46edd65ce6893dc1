import type { Logger } from 'pino';
import type { ModuleExecutor } from './executor/module-executor.js';
import type { OrchestratorLink } from './registration/orchestrator-link.js';

/** A worker's lifecycle. */
export type WorkerState =
  /** Takes modules. */
  | 'running'
  /** Takes no new modules; finishes the running ones, then stops. */
  | 'draining'
  /** Unregistering and closing. */
  | 'stopping'
  | 'stopped';

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
  private readonly resolveStopped: () => void;
  /** Resolves once the worker stopped. */
  readonly stopped: Promise<void>;

  constructor(private readonly parts: WorkerLifecycleParts) {
    let resolveStopped!: () => void;
    this.stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
    this.resolveStopped = resolveStopped;
  }

  get state(): WorkerState {
    return this.current;
  }

  /**
   * Takes no new modules, tells the orchestrator, lets every running module finish, then shuts
   * down. Once: later calls (and calls after a shutdown began) get the same promise.
   */
  drain(): Promise<void> {
    return (this.draining ??= (async () => {
      if (this.current !== 'running') return;
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
      const timer = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
      if ((await Promise.race([idle.then(() => 'idle'), timer])) !== 'idle') {
        logger.warn({ running: executor.load }, 'shutdown grace period over; cancelling running modules');
      }
      // Cancels what still runs and stops the module hosts: resolves once no process of any
      // module runs (in-process modules that ignore their signal: after 5 s at most).
      await executor.close('worker shutting down');
      await link?.stop();
      await this.parts.close();
      this.current = 'stopped';
      this.resolveStopped();
    })());
  }
}
