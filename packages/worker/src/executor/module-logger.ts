import type { ModuleLogger } from '@mpd/pipeline';
import { LOG_LINE_KEYS, maskDeep, type SecretMasker } from '@mpd/server-kit';
import type { Logger } from 'pino';
import type { OutputWriter } from './module-output.js';

/**
 * Where a module's fields named like one of its line's own keys go: `ctx.logger.info('started',
 * { pid: process.pid })` in a module host writes `"pid":<the worker's>, …, "moduleFields":{"pid":<the host's>}`.
 */
export const MODULE_FIELDS_KEY = 'moduleFields';

/**
 * The module's logger on the worker: every message and field passes through the secret masker.
 * Each line also goes to `output` (stream `log`, its level; fields as JSON after the message),
 * masked the same way (once, for both).
 * In-process modules log through it directly; a module host's log lines arrive over its IPC
 * channel and are written through it (masking stays on the worker's side either way).
 *
 * A field named like one of the line's own keys — those of every line (`LOG_LINE_KEYS`: level,
 * time, service, pid, hostname, msg) and the bindings of `log` (workerId, module, executionId)
 * — is written under {@link MODULE_FIELDS_KEY} instead: pino writes a call's fields beside the
 * line's own whatever their names, and the line would hold the key twice (a JSON parser keeps
 * the last one, so the module's `pid` would pass for the worker's). The other fields stay where
 * the module put them.
 *
 * A line logged once `outputClosed()` says the execution's output is closed (a timer or callback
 * the module left running after it ended) can be in no output any more, so no one watching the
 * run sees it: it goes to the worker's log alone, at `warn` whatever its level, its message
 * saying so (`ctx.logger.info after its module ended (not in its output): …`), rather than
 * nowhere (it was dropped silently with module hosts, a new user found in round G).
 */
export function toModuleLogger(
  log: Logger,
  mask: SecretMasker,
  output?: OutputWriter,
  outputClosed?: () => boolean,
): ModuleLogger {
  /** The line's own keys, read at the first line with fields (most modules log none). */
  let taken: ReadonlySet<string> | undefined;
  const write =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (message: string, fields?: Record<string, unknown>): void => {
      const late = outputClosed?.() === true;
      const masked = late
        ? `ctx.logger.${level} after its module ended (not in its output): ${mask(message)}`
        : mask(message);
      const logged = late ? 'warn' : level;
      if (fields === undefined) {
        log[logged](masked);
        if (!late) output?.write('log', masked, level);
        return;
      }
      taken ??= new Set([...LOG_LINE_KEYS, ...Object.keys(log.bindings()), MODULE_FIELDS_KEY]);
      const maskedFields = maskDeep(fields, mask);
      log[logged](apart(maskedFields, taken), masked);
      if (!late) output?.write('log', `${masked} ${fieldsText(maskedFields)}`, level);
    };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

/** A module's log fields as they follow its message in its output: JSON, or text when JSON cannot write them. */
function fieldsText(fields: unknown): string {
  try {
    return JSON.stringify(fields) ?? String(fields);
  } catch {
    return String(fields);
  }
}

/** `fields` with those named in `taken` moved under {@link MODULE_FIELDS_KEY}; `fields` itself when none is. */
function apart(fields: unknown, taken: ReadonlySet<string>): object {
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) return { [MODULE_FIELDS_KEY]: fields };
  const record = fields as Record<string, unknown>;
  if (!Object.keys(record).some((key) => taken.has(key))) return record;
  const kept: Record<string, unknown> = {};
  const moved: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) (taken.has(key) ? moved : kept)[key] = value;
  return { ...kept, [MODULE_FIELDS_KEY]: moved };
}
