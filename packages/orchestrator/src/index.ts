/**
 * `@mpd/orchestrator`: the mpd orchestrator — the worker registry and its HTTP API.
 *
 * ```ts
 * import { startOrchestrator } from '@mpd/orchestrator';
 *
 * const orchestrator = await startOrchestrator({ port: 0, host: '127.0.0.1' });
 * console.log(`workers register at ${orchestrator.url}/api/workers/register`);
 * orchestrator.registry.onChange((event) => console.log(event.type, event.workerId));
 * // ...
 * await orchestrator.close();
 * ```
 *
 * To run a pipeline on the registered workers from your own code (what `mpd-orchestrator
 * --pipeline` does), hand `runPipeline` the pipeline and the orchestrator's registry. It does
 * not wait for workers first: a ready module waits up to `workerWaitMs` (5 minutes) for a live
 * worker that loaded the same pipeline file and meets its requirements.
 *
 * ```ts
 * import { formatSummary, runPipeline, startOrchestrator } from '@mpd/orchestrator';
 * import { loadPipelineFile } from '@mpd/pipeline';
 * import { pino } from 'pino';
 *
 * const orchestrator = await startOrchestrator({ port: 8080, joinToken: process.env.MPD_JOIN_TOKEN });
 * const pipeline = await loadPipelineFile('ci.pipeline.ts');
 * const result = await runPipeline({
 *   pipeline,
 *   registry: orchestrator.registry,
 *   // Each connection to a worker is checked by the orchestrator's endpoint policy (its own address included).
 *   endpointPolicy: orchestrator.endpointPolicy,
 *   logger: pino(),
 * });
 * console.log(formatSummary(result));
 * await orchestrator.close();
 * process.exitCode = result.success ? 0 : 1;
 * ```
 *
 * To serve the API from your own server, build the express app yourself:
 *
 * ```ts
 * import { createApp, InMemoryNodeRegistry } from '@mpd/orchestrator';
 *
 * const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 120_000 });
 * createApp({ registry }).listen(8080);
 * setInterval(() => registry.sweep(), 5_000).unref(); // report workers that went offline, remove those offline past the retention
 * ```
 */
export { createApp } from './app.js';
export { ExecutionLogs } from './runner/execution-logs.js';
export type { AppDependencies } from './app.js';
export { startOrchestrator } from './server.js';
export type { RunningOrchestrator, StartOrchestratorOptions } from './server.js';
export { EndpointRefusedError, WorkerEndpointPolicy } from './http/endpoint-policy.js';
export type {
  EndpointRefusal,
  HostResolver,
  OwnListener,
  WorkerEndpointPolicyOptions,
} from './http/endpoint-policy.js';
export { InMemoryNodeRegistry } from './registry/in-memory-node-registry.js';
export type { InMemoryNodeRegistryOptions } from './registry/in-memory-node-registry.js';
export type {
  HeartbeatReport,
  IncarnationOptions,
  NodeRegistry,
  NodeRegistryEvent,
  NodeRegistryListener,
  RegisterOptions,
} from './registry/node-registry.js';
export { DEFAULT_RUN_OPTIONS, formatSummary, runPipeline } from './runner/index.js';
export type {
  AttemptRecord,
  ModuleRunResult,
  ModuleStatus,
  RunEvent,
  RunPipelineOptions,
  RunClock,
  RunResult,
  WorkerClientTarget,
} from './runner/index.js';
export {
  DEFAULT_ARTIFACT_RETENTION_MS,
  DEFAULT_ARTIFACT_URL_EXPIRY_MS,
  DEFAULT_ORCHESTRATOR_OPTIONS,
  DEFAULT_START_OPTIONS,
} from './orchestrator-options.js';
export type { ArtifactStore } from './artifacts/artifact-store.js';
export type { OrchestratorOptions, RateLimitOptions, ResolvedOrchestratorOptions } from './orchestrator-options.js';
export { OrchestratorConfigError, OrchestratorStartError, RegistrationError } from './errors.js';
export type { OrchestratorConfigErrorCode, OrchestratorStartErrorCode, RegistrationErrorCode } from './errors.js';
