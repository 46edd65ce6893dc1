import type { ModuleLogger } from '@mpd/pipeline';
import { maskDeep, type SecretMasker } from '@mpd/server-kit';
import type { Logger } from 'pino';

/**
 * The module's logger on the worker: every message and field passes through the secret masker.
 * In-process modules log through it directly; a module host's log lines arrive over its IPC
 * channel and are written through it (masking stays on the worker's side either way).
 */
export function toModuleLogger(log: Logger, mask: SecretMasker): ModuleLogger {
  const write =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (message: string, fields?: Record<string, unknown>): void =>
      log[level](maskDeep(fields ?? {}, mask), mask(message));
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}
