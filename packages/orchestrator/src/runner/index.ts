export { runPipeline } from './pipeline-runner.js';
export type { RunPipelineOptions } from './pipeline-runner.js';
export { formatEvent, formatSummary } from './summary.js';
export type { AttemptRecord, ModuleRunResult, ModuleStatus, RunEvent, RunResult } from './run-result.js';
