/** Why a setting of the orchestrator was refused. */
export type OrchestratorConfigErrorCode =
  /** A setting (CLI flag, environment variable or option) has a value that cannot work. */
  'InvalidSetting';

/**
 * A setting of the orchestrator that cannot work, e.g. `--port abc` or
 * `heartbeatTimeoutMs: -1`. The message names the setting and the value.
 */
export class OrchestratorConfigError extends Error {
  override readonly name = 'OrchestratorConfigError';
  /** The setting at fault as the user wrote it, e.g. `--port (MPD_PORT)` or `heartbeatTimeoutMs`. */
  readonly setting: string;
  constructor(
    readonly code: OrchestratorConfigErrorCode,
    setting: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.setting = setting;
  }
}

/** Why the orchestrator could not start. */
export type OrchestratorStartErrorCode =
  /** The HTTP server could not listen (port in use, address not available, no permission). */
  | 'ListenFailed'
  /**
   * The artifact store cannot be used: the directory `artifactsDir` cannot be made or written
   * (a file in its place, no permission), or the bucket of `artifactStore` refused or failed the
   * orchestrator's check at start (credentials, bucket, region, permissions, endpoint).
   */
  | 'ArtifactStoreUnavailable';

/** The orchestrator could not start; `cause` holds the underlying error. */
export class OrchestratorStartError extends Error {
  override readonly name = 'OrchestratorStartError';
  constructor(
    readonly code: OrchestratorStartErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Why the registry refused a registration, or a worker's call about itself. */
export type RegistrationErrorCode =
  /** The id is held by a live worker with another credential. */
  | 'WorkerIdTaken'
  /** The caller's incarnation is no longer the registered one: another process took its id. */
  | 'WorkerReplaced'
  /** A new id, and the registry holds its `maxWorkers` already (Offline ones included, until removed). */
  | 'TooManyWorkers'
  /** A new distinct pipeline, and the registry holds its `maxPipelines` already. */
  | 'TooManyPipelines';

/** A registration (or a heartbeat, drain or unregister of a replaced incarnation) the registry refused; the message says why. */
export class RegistrationError extends Error {
  override readonly name = 'RegistrationError';
  /**
   * `TooManyWorkers` and `TooManyPipelines`: in how many seconds (at least 1) the registry
   * expects to have removed an entry, so that a retry may pass (the HTTP API's `Retry-After`);
   * `WorkerIdTaken`: in how many seconds (at least 1) the holder's heartbeat lease ends, after
   * which it is `Offline` unless it heartbeats again.
   */
  readonly retryAfterSeconds: number | undefined;
  constructor(
    readonly code: RegistrationErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(message, options);
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}
