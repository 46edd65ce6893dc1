import type { OutputLine } from '@mpd/contract';

/** A module's status, as ModularPipelines names them. */
export type ModuleStatus =
  | 'NotYetStarted'
  | 'Processing'
  | 'Successful'
  /** Failed after its retries. */
  | 'Failed'
  /** Failed, but the module has `ignoreFailures`: its dependants ran. */
  | 'IgnoredFailure'
  /** Ran past its timeout (after its retries). */
  | 'TimedOut'
  /** Not run: its `skipIf` gave a reason, a category filter left it out, or a required dependency was skipped. */
  | 'Skipped'
  /** Not run because a module it depends on failed. */
  | 'DependencyFailed'
  /** Not run, or stopped, because the run was cancelled or stopped after a failure. */
  | 'PipelineTerminated';

/** Statuses after which a module's dependants may use its (possibly absent) result. */
export const SUCCEEDED: ReadonlySet<ModuleStatus> = new Set(['Successful', 'IgnoredFailure']);
/** Statuses that end a module. */
export const TERMINAL: ReadonlySet<ModuleStatus> = new Set([
  'Successful',
  'Failed',
  'IgnoredFailure',
  'TimedOut',
  'Skipped',
  'DependencyFailed',
  'PipelineTerminated',
]);

/** One dispatch of a module to a worker. */
export interface AttemptRecord {
  executionId: string;
  workerId: string;
  startTime: string;
  endTime?: string;
  /**
   * How the attempt ended. `Lost`: the worker became unreachable or went offline;
   * `Rejected`: the worker had no free slot after all (the module was dispatched again).
   */
  outcome: 'Running' | 'Succeeded' | 'Failed' | 'TimedOut' | 'Lost' | 'Rejected' | 'Cancelled';
  error?: string;
  /**
   * An answer that arrived after the attempt was abandoned (declared lost, timed out at the
   * orchestrator, or superseded) and was not accepted: a failure, a time-out at the worker, a
   * cancel (the worker's 500 `failureKind: 'Cancelled'`: it stopped the module, or the cancel
   * came first and it ran nothing), or a success that came after the module had ended.
   */
  lateAnswer?: { outcome: 'Succeeded' | 'Failed' | 'TimedOut' | 'Cancelled'; at: string };
  /**
   * The attempt had been abandoned (`after`: how, with `reason`) when its successful answer
   * arrived; the module had not ended, so this result was accepted (the first success of a
   * module is accepted, whichever attempt gives it). Its `outcome` is then `Succeeded`.
   */
  acceptedLate?: { after: 'Lost' | 'TimedOut'; reason?: string; at: string };
  /**
   * The attempt's output log (`<logsDir>/<module>/<attempt>.log`: one line per output line,
   * `<ISO time> <stream> <level or -> <text>`), when the run keeps logs and the attempt wrote
   * a line (an attempt without output has no file and no `log`).
   */
  log?: string;
}

export interface ModuleRunResult {
  name: string;
  status: ModuleStatus;
  /** The worker whose result was accepted (or the last one tried). */
  workerId?: string;
  attempts: AttemptRecord[];
  /** Start and end of the accepted attempt, as the worker measured them. */
  startTime?: string;
  endTime?: string;
  durationMs?: number;
  /** The module's result (parsed JSON) when it succeeded. */
  result?: unknown;
  /** Why it failed (Failed, IgnoredFailure, TimedOut). */
  error?: { message: string; type: string; stackTrace?: string | null };
  /**
   * Why it did not run (Skipped, DependencyFailed, PipelineTerminated), or, for a module the run
   * stopped after it started (PipelineTerminated with attempts), why it was stopped:
   * `cancelled while running: the run was cancelled`.
   */
  reason?: string;
}

export interface RunResult {
  runId: string;
  pipeline: string;
  success: boolean;
  status: 'Successful' | 'Failed' | 'Cancelled';
  startTime: string;
  endTime: string;
  durationMs: number;
  /** In the pipeline's dependency order. */
  modules: ModuleRunResult[];
}

/** Progress of a run, for live output. */
export type RunEvent =
  | { type: 'module-started'; module: string; workerId: string; executionId: string; attempt: number }
  | { type: 'module-finished'; module: string; result: ModuleRunResult }
  | { type: 'module-retrying'; module: string; failures: number; delayMs: number; error: string }
  | { type: 'attempt-lost'; module: string; workerId: string; executionId: string; reason: string }
  | { type: 'module-not-run'; module: string; status: ModuleStatus; reason: string }
  | { type: 'run-stopping'; reason: string }
  /**
   * Lines a module wrote (masked), as its worker shipped them, in order per attempt; `closed`:
   * the attempt's log is complete (its worker sent its last batch; `lines` may then be empty).
   */
  | { type: 'output'; module: string; attempt: number; workerId: string; lines: OutputLine[]; closed?: true }
  /**
   * At the run's end, an attempt's log was still open when the run stopped waiting for it: its
   * worker sent nothing for `waitedMs` (`reason` `silent`: the run's `outputGraceMs`), or the
   * wait reached its limit (`limit`: `maxOutputWaitMs`) while lines still came. The attempt's
   * log ends after `linesReceived` lines; whatever its worker still had is dropped (its batches
   * answer 404 from now on).
   */
  | {
      type: 'output-incomplete';
      module: string;
      attempt: number;
      workerId: string;
      linesReceived: number;
      reason: 'silent' | 'limit';
      waitedMs: number;
    };
