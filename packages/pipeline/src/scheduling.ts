/** Scheduling options of a module: how the orchestrator places, orders, limits and retries it. */

/** Ready modules start in priority order (highest first), then in pipeline order. */
export type ModulePriority = 'Low' | 'Normal' | 'High' | 'Critical';
export const MODULE_PRIORITIES: readonly ModulePriority[] = ['Low', 'Normal', 'High', 'Critical'];

/** What a worker must have to run a module. */
export interface ModuleRequirements {
  /** The worker's OS must be one of these (`linux`, `windows`, `macos`). */
  os?: readonly string[];
  /** The worker must have every one of these tools. */
  tools?: readonly string[];
  /** The worker must have every one of these tags. */
  tags?: readonly string[];
}

/** Retries of a module that failed (threw or timed out); lost workers are retried separately. */
export interface RetryPolicy {
  /** How many times to run the module again after a failure (0: never). */
  attempts: number;
  /**
   * The first retry waits about this long; each later one twice as long (with jitter).
   * @default 1_000
   */
  backoffMs?: number;
  /**
   * The longest wait between two attempts.
   * @default 60_000
   */
  maxBackoffMs?: number;
}

/** At most `limit` modules with the same `key` run at once across the whole cluster. */
export interface ParallelLimit {
  key: string;
  limit: number;
}

/** A retry policy with its defaults filled in. */
export type ResolvedRetryPolicy = Required<RetryPolicy>;

export const NO_RETRY: ResolvedRetryPolicy = Object.freeze({ attempts: 0, backoffMs: 1_000, maxBackoffMs: 60_000 });

/** How a run goes on after a module fails. */
export type FailureMode =
  /** Cancel the running modules on every worker, start nothing new but always-run modules (default). */
  | 'StopOnFirstFailure'
  /** Let every module that does not depend on the failure run. */
  | 'WaitForAll';
