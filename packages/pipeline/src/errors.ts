/** Why a pipeline definition was refused. */
export type PipelineDefinitionErrorCode =
  'InvalidModule' | 'DuplicateModule' | 'MissingDependency' | 'DependencyCycle' | 'InvalidPipeline';

/** Thrown by `defineModule` / `definePipeline` for a definition that can never run. */
export class PipelineDefinitionError extends Error {
  override readonly name = 'PipelineDefinitionError';
  constructor(
    readonly code: PipelineDefinitionErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type PipelineLoadErrorCode = 'FileNotFound' | 'ImportFailed' | 'NoPipelineExport';

/** Thrown by `loadPipelineFile` when a file does not give a pipeline. */
export class PipelineLoadError extends Error {
  override readonly name = 'PipelineLoadError';
  constructor(
    readonly code: PipelineLoadErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
