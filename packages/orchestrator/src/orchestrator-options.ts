import { pino, type Logger } from 'pino';
import { OrchestratorConfigError } from './errors.js';

/** Settings of an orchestrator (the app, the registry and the server). */
export interface OrchestratorOptions {
  /**
   * How often workers should send a heartbeat, in seconds; sent to each worker in its
   * registration response.
   * @default 30
   */
  heartbeatIntervalSeconds: number;
  /**
   * How long after its last heartbeat a worker counts as `Offline`, in milliseconds.
   * Keep it a few heartbeat intervals long so one lost heartbeat does not drop a worker.
   * @default 120_000
   */
  heartbeatTimeoutMs: number;
  /**
   * Validate every response body against the contract before sending it (a body that
   * does not match answers 500 instead). Costs a little time per request; tests turn it on.
   * @default false
   */
  validateResponses: boolean;
  /**
   * Where the orchestrator logs (requests at `debug`, failures at `error`).
   * @default a silent pino logger
   */
  logger: Logger;
}

/** The defaults of {@link OrchestratorOptions} (the logger is made on demand). */
export const DEFAULT_ORCHESTRATOR_OPTIONS = {
  heartbeatIntervalSeconds: 30,
  heartbeatTimeoutMs: 120_000,
  validateResponses: false,
} as const satisfies Omit<OrchestratorOptions, 'logger'>;

/**
 * Fills in defaults and checks the numbers.
 * @throws OrchestratorConfigError (code `InvalidSetting`) naming the option at fault.
 */
export function resolveOrchestratorOptions(options: Partial<OrchestratorOptions> = {}): OrchestratorOptions {
  const resolved: OrchestratorOptions = {
    heartbeatIntervalSeconds: options.heartbeatIntervalSeconds ?? DEFAULT_ORCHESTRATOR_OPTIONS.heartbeatIntervalSeconds,
    heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? DEFAULT_ORCHESTRATOR_OPTIONS.heartbeatTimeoutMs,
    validateResponses: options.validateResponses ?? DEFAULT_ORCHESTRATOR_OPTIONS.validateResponses,
    logger: options.logger ?? pino({ level: 'silent' }),
  };
  requirePositive('heartbeatIntervalSeconds', resolved.heartbeatIntervalSeconds);
  requirePositive('heartbeatTimeoutMs', resolved.heartbeatTimeoutMs);
  return resolved;
}

/** @throws OrchestratorConfigError unless `value` is a finite number above zero. */
export function requirePositive(setting: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new OrchestratorConfigError(
      'InvalidSetting',
      setting,
      `Invalid setting ${setting}: must be a finite number above 0, got ${String(value)}`,
    );
  }
}
