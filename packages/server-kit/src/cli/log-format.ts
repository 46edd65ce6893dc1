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
