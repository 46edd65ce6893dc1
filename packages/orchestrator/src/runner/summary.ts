import { formatTimeSpan } from '@mpd/contract';
import type { ModuleRunResult, RunEvent, RunResult } from './run-result.js';

const seconds = (ms: number | undefined): string => (ms === undefined ? '-' : `${(ms / 1000).toFixed(2)}s`);

/** One plain line per progress event (readable in CI logs, where there is no TTY). */
export function formatEvent(event: RunEvent): string {
  switch (event.type) {
    case 'module-started':
      return `[mpd] ▶ ${event.module} on ${event.workerId}${event.attempt > 1 ? ` (attempt ${event.attempt})` : ''}`;
    case 'module-finished': {
      const { result } = event;
      const mark = result.status === 'Successful' ? '✔' : '✘';
      const error = result.error ? `: ${result.error.message}` : '';
      return `[mpd] ${mark} ${event.module} ${result.status} on ${result.workerId ?? '-'} in ${seconds(result.durationMs)}${error}`;
    }
    case 'attempt-lost':
      return `[mpd] ⚠ ${event.module}: attempt ${event.executionId} on ${event.workerId} lost (${event.reason}); dispatching again`;
    case 'module-not-run':
      return `[mpd] ○ ${event.module} ${event.status} (${event.reason})`;
    case 'module-retrying':
      return `[mpd] ↻ ${event.module} failed (${event.error}); retry ${event.failures} in ${seconds(event.delayMs)}`;
    case 'run-stopping':
      return `[mpd] ■ stopping: ${event.reason}; cancelling running modules, then running always-run modules`;
    case 'output-incomplete': {
      const what = `${event.module}${event.attempt > 1 ? ` (attempt ${event.attempt})` : ''} on ${event.workerId}`;
      const why =
        event.reason === 'silent'
          ? `its worker sent nothing for ${seconds(event.waitedMs)}`
          : `the run's wait for output reached its limit (${formatTimeSpan(event.waitedMs)})`;
      return `[mpd] ⚠ output of ${what} incomplete: ${event.linesReceived} line(s) received, then ${why}; the rest is dropped`;
    }
    case 'output':
      return event.lines.map((line) => `[${event.module}] ${line.text}`).join('\n');
  }
}

/**
 * A module's Attempts cell: its attempts, refusals apart (`1 (6 refused)`). An attempt its worker
 * refused before running anything (outcome `Rejected`: 429/503, or a credential it has not read
 * yet) uses up no retry (README "Failures, retries and cancellation"), so it is not counted as one.
 */
function attemptsCell(attempts: readonly { outcome: string }[]): string {
  const refused = attempts.filter((attempt) => attempt.outcome === 'Rejected').length;
  const ran = attempts.length - refused;
  return refused === 0 ? String(ran) : `${ran} (${refused} refused)`;
}

/**
 * The summary table printed at the end of a run: module, status, worker, attempts (those refused
 * before they ran apart, see `attemptsCell`), duration, start, end.
 */
export function formatSummary(result: RunResult): string {
  const rows = result.modules.map((module) => [
    module.name,
    module.status,
    module.workerId ?? '-',
    attemptsCell(module.attempts),
    seconds(module.durationMs),
    module.startTime ?? '-',
    module.endTime ?? '-',
  ]);
  const header = ['Module', 'Status', 'Worker', 'Attempts', 'Duration', 'Start', 'End'];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd();
  const sumOfModules = result.modules.reduce((sum, module) => sum + (module.durationMs ?? 0), 0);
  const speedup = result.durationMs > 0 ? sumOfModules / result.durationMs : 0;
  const failures = result.modules.filter(
    (module) =>
      module.error &&
      (module.status === 'Failed' || module.status === 'TimedOut' || module.status === 'IgnoredFailure'),
  );
  // Modules with a reason did not end on their own; those that started (had attempts) are not
  // listed as not run.
  const stopped = result.modules.filter((module) => module.reason && module.attempts.length > 0);
  const notRun = result.modules.filter((module) => module.reason && module.attempts.length === 0);
  const list = (title: string, modules: ModuleRunResult[], text: (module: ModuleRunResult) => string): string[] =>
    modules.length > 0
      ? ['', title, ...modules.map((module) => `  ${module.name} (${module.status}): ${text(module)}`)]
      : [];
  return [
    `Pipeline '${result.pipeline}' ${result.status} in ${seconds(result.durationMs)} (${formatTimeSpan(result.durationMs)}), run ${result.runId}`,
    '',
    line(header),
    line(widths.map((width) => '-'.repeat(width))),
    ...rows.map(line),
    '',
    `Wall time ${seconds(result.durationMs)}; modules took ${seconds(sumOfModules)} in all: speedup ×${speedup.toFixed(2)}`,
    ...list('Failures:', failures, (module) => module.error!.message),
    ...list('Stopped after starting:', stopped, (module) => module.reason!),
    ...list('Not run:', notRun, (module) => module.reason!),
  ].join('\n');
}
