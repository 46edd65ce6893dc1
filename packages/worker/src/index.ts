/**
 * `@mpd/worker`: executes pipeline modules sent by the mpd orchestrator.
 *
 * ```ts
 * import { loadPipelineFile } from '@mpd/pipeline';
 * import { startWorker } from '@mpd/worker';
 *
 * const worker = await startWorker({
 *   port: 0,
 *   orchestratorUrl: 'http://127.0.0.1:8080',
 *   pipeline: await loadPipelineFile('pipeline.ts'),
 *   slots: 4,
 * });
 * console.log(`worker ${worker.id} at ${worker.url}`);
 * process.on('SIGTERM', () => void worker.close());
 * // Stops on its own when another process registers under its id, or the orchestrator refuses it.
 * const exit = await worker.stopped; // { reason: 'stopped' | 'replaced' | 'registration-refused', … }
 * ```
 */
export { startWorker } from './server.js';
export type { RunningWorker } from './server.js';
export type { WorkerExit, WorkerState } from './worker-lifecycle.js';
export { createApp } from './app.js';
export type { WorkerAppDeps } from './app.js';
export type { CallGate } from './http/auth.js';
export { ModuleExecutor } from './executor/module-executor.js';
export type { ExecuteDecision, ModuleExecutorOptions, WorkerIsolation } from './executor/module-executor.js';
export { CommandFailedError } from './executor/module-commands.js';
export type { ExecutionOutcome, ExecutionRequest } from './executor/execution.js';
export type { LinkEnd, LinkState } from './registration/orchestrator-link.js';
export {
  DEFAULT_OUTPUT_BUFFER_BYTES,
  DEFAULT_OUTPUT_SHIPPER_OPTIONS,
  DEFAULT_OUTPUT_SPILL_BYTES,
  OutputShipper,
} from './registration/output-shipper.js';
export type { OutputShipperOptions } from './registration/output-shipper.js';
export type { ModuleOutput, OutputWriter } from './executor/module-output.js';
export { DEFAULT_WORKER_OPTIONS } from './worker-options.js';
export {
  DEFAULT_INLINE_RESULT_BYTES,
  DEFAULT_WORKER_MAX_RESULT_BYTES,
  RESULT_REF_KEY,
  ResultReferenceError,
} from './executor/result-references.js';
export type { WorkerOptions } from './worker-options.js';
export { defaultWorkerId, detectTools, osName } from './capabilities.js';
export { ExecutionCancelledError, ModuleTimeoutError, WorkerConfigError, WorkerError } from './errors.js';
export type { WorkerConfigErrorCode, WorkerErrorCode } from './errors.js';
