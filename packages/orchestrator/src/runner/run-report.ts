import { createSecretMasker, maskDeep, type SecretMasker } from '@mpd/server-kit';
import type { ModuleRunResult, RunEvent, RunResult } from './run-result.js';

/** A copy of a module's result record, for a listener (the module's `result` value is shared: nothing changes it). */
export function copyResult(result: ModuleRunResult): ModuleRunResult {
  const copy: ModuleRunResult = { ...result, attempts: result.attempts.map((attempt) => ({ ...attempt })) };
  for (const attempt of copy.attempts) {
    if (attempt.lateAnswer) attempt.lateAnswer = { ...attempt.lateAnswer };
    if (attempt.acceptedLate) attempt.acceptedLate = { ...attempt.acceptedLate };
  }
  if (result.error) copy.error = { ...result.error };
  return copy;
}

/** How a run ended, for {@link RunReporter.result}. */
export interface RunEnding {
  runId: string;
  pipeline: string;
  startedAt: Date;
  endedAt: Date;
  /** Every module's record, in pipeline order (the run's own, copied or masked here). */
  modules: Iterable<ModuleRunResult>;
  /** Whether the run was cancelled (its status is then `Cancelled`, whatever its modules did). */
  cancelled: boolean;
}

/**
 * What a run tells the outside: its progress events and its result, with the values of its
 * secret environment variables masked (`***`) when it has any, else with copies of the records
 * the run goes on changing.
 */
export class RunReporter {
  readonly #masker: SecretMasker | undefined;

  /** `secrets`: the run's secret environment variables (name → value). */
  constructor(
    private readonly onEvent: ((event: RunEvent) => void) | undefined,
    secrets: Readonly<Record<string, string>>,
  ) {
    this.#masker = Object.keys(secrets).length > 0 ? createSecretMasker(Object.values(secrets)) : undefined;
  }

  /** Reports progress, with secrets masked. */
  emit(event: RunEvent): void {
    const { onEvent } = this;
    if (!onEvent) return;
    if (this.#masker) {
      onEvent(maskDeep(event, this.#masker));
      return;
    }
    // Nothing to mask: only a module's result record needs copying (the run goes on changing its own).
    onEvent(event.type === 'module-finished' ? { ...event, result: copyResult(event.result) } : event);
  }

  /** The run's result. */
  result(ending: RunEnding): RunResult {
    // Workers already mask secrets in what they send; mask again what the run reports (results included).
    const modules = [...ending.modules].map((result) =>
      this.#masker ? maskDeep(result, this.#masker) : copyResult(result),
    );
    const { cancelled, startedAt, endedAt } = ending;
    const success =
      !cancelled &&
      modules.every(
        (module) => module.status === 'Successful' || module.status === 'IgnoredFailure' || module.status === 'Skipped',
      );
    return {
      runId: ending.runId,
      pipeline: ending.pipeline,
      success,
      status: cancelled ? 'Cancelled' : success ? 'Successful' : 'Failed',
      startTime: startedAt.toISOString(),
      endTime: endedAt.toISOString(),
      durationMs: endedAt.getTime() - startedAt.getTime(),
      modules,
    };
  }
}
