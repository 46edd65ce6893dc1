export { runPipeline } from './pipeline-runner.js';
export { DEFAULT_RUN_OPTIONS } from './run-options.js';
export type { RunPipelineOptions, WorkerClientTarget } from './run-options.js';
export { runPipelineFromCli } from './cli-run.js';
export type { RunPipelineFromCliOptions } from './cli-run.js';
export { formatEvent, formatSummary } from './summary.js';
export { ProgressPrinter } from './progress.js';
export type { ProgressPrinterOptions } from './progress.js';
export type { AttemptRecord, ModuleRunResult, ModuleStatus, RunEvent, RunResult } from './run-result.js';
