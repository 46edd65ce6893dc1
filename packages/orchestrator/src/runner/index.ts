export { runPipeline } from './pipeline-runner.js';
export { DEFAULT_RUN_OPTIONS } from './run-defaults.js';
export type { RunPipelineOptions, WorkerClientTarget } from './run-options.js';
export type { RunClock } from './run-clock.js';
export { noCapableWorkerReason, unfitReason } from './requirement-messages.js';
export { formatEvent, formatSummary } from './summary.js';
export type { AttemptRecord, ModuleRunResult, ModuleStatus, RunEvent, RunResult } from './run-result.js';
export { attemptLogFile, ExecutionLogs, formatLogLine, TAIL_LINES } from './execution-logs.js';
export type { AppendOutcome, ExecutionLogEntry } from './execution-logs.js';
