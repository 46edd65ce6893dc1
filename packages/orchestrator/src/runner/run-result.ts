/** A module's status, as ModularPipelines names them. */
export type ModuleStatus =
  | 'NotYetStarted'
  | 'Processing'
  | 'Successful'
  | 'Failed'
  | 'TimedOut'
  /** Not run because a module it depends on did not succeed. */
  | 'DependencyFailed'
  /** Not run, or stopped, because the run was cancelled. */
  | 'PipelineTerminated';

/** One dispatch of a module to a worker. */
export interface AttemptRecord {
  executionId: string;
  workerId: string;
  startTime: string;
  endTime?: string;
  /** How the attempt ended. `Lost`: the worker became unreachable or went offline. */
  outcome: 'Running' | 'Succeeded' | 'Failed' | 'Lost' | 'Rejected' | 'Cancelled';
  error?: string;
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
  error?: { message: string; type: string; stackTrace?: string | null };
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
  | { type: 'attempt-lost'; module: string; workerId: string; executionId: string; reason: string }
  | { type: 'module-not-run'; module: string; status: ModuleStatus; reason: string };
