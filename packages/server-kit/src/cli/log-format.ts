/**
 * pino `formatters` for both servers' JSON logs: the level as its name (`"level":"warn"`)
 * rather than pino's number (`"level":40`), as log collectors (Loki, CloudWatch, Datadog) and
 * people grepping expect. Pass as `pino({ formatters: LOG_FORMATTERS, ... })`.
 */
export const LOG_FORMATTERS = {
  /** `{ level: 'info' }` for pino's label `info` (number 30). */
  level: (label: string): { level: string } => ({ level: label }),
} as const;
