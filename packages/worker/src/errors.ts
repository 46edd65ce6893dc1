/** Codes of the errors the worker raises itself. */
export type WorkerErrorCode =
  /** A setting (flag or environment variable) has an invalid value. */
  | 'InvalidSetting'
  /** The server could not listen on its address (port in use, address not on this machine). */
  | 'ListenFailed'
  /** The module's timeout passed. */
  | 'TimedOut'
  /** The orchestrator (or a shutdown) cancelled the execution. */
  | 'Cancelled'
  /** The module's result cannot be sent as JSON. */
  | 'ResultNotSerializable'
  /** The module's result is larger than `maxResultBytes` (`--max-result-size`). */
  | 'ResultTooLarge'
  /** The module's result nests deeper than the contract's `LIMITS.json.maxDepth`. */
  | 'ResultTooDeep'
  /** A result could not be stored by reference, or a dependency's reference could not be fetched. */
  | 'ResultReferenceFailed';

/** An error raised by the worker, with a machine-readable `code` and the original `cause`. */
export class WorkerError extends Error {
  override readonly name: string = 'WorkerError';
  constructor(
    readonly code: WorkerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The module ran past its timeout; its `signal` was aborted with this reason. */
export class ModuleTimeoutError extends WorkerError {
  override readonly name = 'ModuleTimeoutError';
  constructor(message: string) {
    super('TimedOut', message);
  }
}

/** The execution was cancelled; its `signal` was aborted with this reason. */
export class ExecutionCancelledError extends WorkerError {
  override readonly name = 'ExecutionCancelledError';
  constructor(message: string) {
    super('Cancelled', message);
  }
}

/**
 * A module's result breaks a limit (its size, its nesting depth): the module fails with this
 * error, on the worker, before anything is sent (`exceptionType` `ResultLimitError`).
 */
export class ResultLimitError extends WorkerError {
  override readonly name = 'ResultLimitError';
  declare readonly code: Extract<WorkerErrorCode, 'ResultTooLarge' | 'ResultTooDeep'>;
  constructor(code: Extract<WorkerErrorCode, 'ResultTooLarge' | 'ResultTooDeep'>, message: string) {
    super(code, message);
  }
}

/** Why a setting of the worker was refused (the codes of {@link WorkerConfigError}). */
export type WorkerConfigErrorCode = Extract<WorkerErrorCode, 'InvalidSetting'>;

/**
 * A setting of the worker that cannot work, e.g. `--port abc` or a `tls` certificate that does
 * not match its key; the message names the setting and the value. Shaped like the
 * orchestrator's `OrchestratorConfigError` (a `code` and the `setting`), so that callers
 * handle both alike.
 */
export class WorkerConfigError extends WorkerError {
  override readonly name = 'WorkerConfigError';
  declare readonly code: WorkerConfigErrorCode;
  /** The setting at fault as the user wrote it, e.g. `--port (MPD_PORT)` or `tls`. */
  readonly setting: string;
  constructor(code: WorkerConfigErrorCode, setting: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.setting = setting;
  }
}
