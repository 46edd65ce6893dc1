/** Why a pipeline definition was refused. */
export type PipelineDefinitionErrorCode =
  'InvalidModule' | 'DuplicateModule' | 'MissingDependency' | 'DependencyCycle' | 'InvalidPipeline';

/** One mistake in a definition: what a {@link PipelineDefinitionError} of it alone says. */
export interface PipelineMistake {
  readonly code: PipelineDefinitionErrorCode;
  /** e.g. `Pipeline 'ci': module 'build' depends on 'restore', which is not in the pipeline's modules` */
  readonly message: string;
}

/**
 * Thrown by `defineModule` / `definePipeline` for a definition that can never run. `definePipeline`
 * names every mistake it finds in one error (code `InvalidPipeline`, a message listing them);
 * for a single mistake, the error is that mistake's own code and message.
 */
export class PipelineDefinitionError extends Error {
  override readonly name = 'PipelineDefinitionError';
  /** Every mistake the error reports, in the order found: `[{ code, message }]` of the error itself for one. */
  readonly mistakes: readonly PipelineMistake[];
  constructor(
    readonly code: PipelineDefinitionErrorCode,
    message: string,
    options?: { cause?: unknown; mistakes?: readonly PipelineMistake[] },
  ) {
    super(message, options);
    this.mistakes = options?.mistakes ?? Object.freeze([Object.freeze({ code, message })]);
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
