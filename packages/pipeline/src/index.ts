/**
 * `@mpd/pipeline`: the pipeline authors' API of mpd, shared by orchestrator and worker.
 *
 * ```ts
 * import { defineModule, definePipeline } from '@mpd/pipeline';
 *
 * const restore = defineModule({ name: 'restore', run: async () => ({ packages: 12 }) });
 * const build = defineModule({
 *   name: 'build',
 *   dependsOn: [restore],
 *   run: async (ctx) => {
 *     ctx.logger.info('building', { packages: ctx.results.restore.packages });
 *     return { artifact: 'dist/app.tgz' };
 *   },
 * });
 *
 * export default definePipeline({ name: 'ci', modules: [restore, build] });
 * ```
 */
export { defineModule, dependencyName, isModule, DEFAULT_MODULE_TIMEOUT_MS } from './module.js';
export type {
  AnyModule,
  ArtifactRef,
  ArtifactUploadOptions,
  ModuleArtifacts,
  CommandOptions,
  Dependency,
  DependencyName,
  DependencyResults,
  ExecOptions,
  ExecResult,
  JsonValue,
  ModuleContext,
  ModuleDefinition,
  ModuleLogger,
  ModuleOptions,
  ModuleResult,
  SkipContext,
  SkipDecision,
  SpawnCommandOptions,
} from './module.js';
export { ARTIFACT_COMPRESSIONS, artifactCompressionProblem } from './declared-artifacts.js';
export type {
  ArtifactCompression,
  ArtifactFiles,
  ArtifactHandle,
  ConsumedArtifact,
  ProducesOption,
  ResolvedConsumed,
  ResolvedProduces,
  WithArtifacts,
} from './declared-artifacts.js';
export { MODULE_PRIORITIES } from './scheduling.js';
export type {
  FailureMode,
  ModulePriority,
  ModuleRequirements,
  ParallelLimit,
  ResolvedRetryPolicy,
  RetryPolicy,
} from './scheduling.js';
export { definePipeline, isPipeline } from './pipeline.js';
export type { Pipeline, PipelineOptions } from './pipeline.js';
export { loadPipelineFile } from './load.js';
export { PipelineDefinitionError, PipelineLoadError } from './errors.js';
export type { PipelineDefinitionErrorCode, PipelineLoadErrorCode, PipelineMistake } from './errors.js';
