import type { ExecutionLogs } from './execution-logs.js';
import type { RunClock } from './run-clock.js';

/** An attempt whose log the run waits for at its end. */
export interface AwaitedLog {
  executionId: string;
  /** The worker that ships it: the grace runs per worker. */
  workerId: string;
}

/** Why an attempt's log was still open when the run stopped waiting for it. */
export type OutputCutReason =
  /** Its worker sent no line (to any of the run's open logs) for `graceMs`. */
  | 'silent'
  /** The wait reached `maxWaitMs` while its worker was still sending. */
  | 'limit';

/** Options of {@link waitForOutput}. */
export interface OutputWaitOptions<A extends AwaitedLog = AwaitedLog> {
  logs: ExecutionLogs;
  attempts: readonly A[];
  clock: RunClock;
  /** How long a worker may send nothing before its open logs are given up (ms). */
  graceMs: number;
  /** The longest the whole wait lasts, however busy the workers still are (ms). */
  maxWaitMs: number;
}

/**
 * Waits, at a run's end, for the logs of `attempts` to close (each worker's `final` batch): as
 * long as their workers keep sending lines, up to `maxWaitMs`. A worker's grace (`graceMs`)
 * starts again each time one of its open logs takes a line (or closes), so a run whose last
 * module left many MiB to ship waits for them (a worker paces its output while the module runs
 * and ships the rest after its answer), while a worker that stopped sending (stalled, gone,
 * backing off) is given up `graceMs` after its last line. Polls every 50 ms on `clock` (the
 * run's timers are cleared by then; a manual clock in tests).
 * @returns the attempts whose log was still open, as given, with why (empty: every log closed)
 */
export async function waitForOutput<A extends AwaitedLog>(
  options: OutputWaitOptions<A>,
): Promise<(A & { reason: OutputCutReason })[]> {
  const { logs, attempts, clock, graceMs, maxWaitMs } = options;
  const limit = clock.now() + maxWaitMs;
  /** Per worker: the progress seen last (lines taken plus logs closed) and when its grace ends. */
  const workers = new Map<string, { progress: number; deadline: number }>();
  for (;;) {
    const now = clock.now();
    const open = attempts.filter((attempt) => !logs.closed(attempt.executionId));
    const progress = new Map<string, number>();
    for (const { executionId, workerId } of attempts) {
      const seen = logs.received(executionId) + (logs.closed(executionId) ? 1 : 0);
      progress.set(workerId, (progress.get(workerId) ?? 0) + seen);
    }
    for (const [workerId, value] of progress) {
      const known = workers.get(workerId);
      if (!known || known.progress !== value) workers.set(workerId, { progress: value, deadline: now + graceMs });
    }
    const until = Math.min(limit, Math.max(...open.map((attempt) => workers.get(attempt.workerId)!.deadline)));
    if (open.length === 0 || now >= until) {
      return open.map((attempt) => ({
        ...attempt,
        reason: now >= workers.get(attempt.workerId)!.deadline ? 'silent' : 'limit',
      }));
    }
    await new Promise<void>((resolve) => clock.after(Math.min(50, until - now), resolve));
  }
}
