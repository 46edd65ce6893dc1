import { hostname } from 'node:os';

/**
 * pino `formatters` for both servers' JSON logs: the level as its name (`"level":"warn"`)
 * rather than pino's number (`"level":40`), as log collectors (Loki, CloudWatch, Datadog) and
 * people grepping expect. Pass as `pino({ formatters: LOG_FORMATTERS, ... })`.
 */
export const LOG_FORMATTERS = {
  /** `{ level: 'info' }` for pino's label `info` (number 30). */
  level: (label: string): { level: string } => ({ level: label }),
} as const;

/**
 * The fields of every log line of a server process, the same in both servers:
 * `{ service: 'mpd-orchestrator' | 'mpd-worker', pid, hostname }` (pino's own default base is
 * `{ pid, hostname }`). Pass as `pino({ base: logBase('mpd-worker'), ... })`.
 */
export function logBase(service: string): { service: string; pid: number; hostname: string } {
  return { service, pid: process.pid, hostname: hostname() };
}

/**
 * The keys of every log line of both servers besides a call's own fields: the level, the time,
 * the base fields of {@link logBase} (pino's default base has `pid` and `hostname` too) and the
 * message. pino writes a call's field of one of these names beside the line's own, so that the
 * line holds the key twice (`JSON.parse` keeps the last; a log collector may keep the first):
 * fields that come from outside the server (a module's `ctx.logger`) must not use them.
 */
export const LOG_LINE_KEYS: readonly string[] = ['level', 'time', 'service', 'pid', 'hostname', 'msg'];

/** What {@link logProcessWarnings} needs of a logger (pino's `warn`). */
export interface WarningLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

/**
 * Makes the process's warnings (`process.emitWarning`: Node's deprecations, a library's notice
 * such as the AWS SDK's `NodeVersionSupportWarning` on Node 20) lines of the JSON log at warn,
 * `{ warning: name, code?, msg }`, instead of Node's plain-text `(node:PID) Name: …` on stderr:
 * a server's stderr carries JSON log lines only (issue 12). Removes Node's own printer (every
 * `warning` listener there was); returns a function that puts them back.
 */
export function logProcessWarnings(logger: WarningLogger): () => void {
  const previous = process.listeners('warning');
  process.removeAllListeners('warning');
  const listener = (warning: Error & { code?: string }): void => {
    logger.warn({ warning: warning.name, ...(warning.code ? { code: warning.code } : {}) }, warning.message);
  };
  process.on('warning', listener);
  return () => {
    process.off('warning', listener);
    for (const restored of previous) process.on('warning', restored);
  };
}
