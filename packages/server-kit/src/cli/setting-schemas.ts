/**
 * Zod schemas for the text of command-line settings (flags and environment variables) both CLIs
 * take. Texts are trimmed where a space cannot belong to the value (numbers, hosts, paths, sizes).
 */
import bytes from 'bytes';
import { z } from 'zod';

/** A comma-separated list: entries trimmed, empty ones dropped (`' a, ,b '` gives `['a', 'b']`). */
export const commaSeparatedText = z.string().transform((text) =>
  text
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean),
);

/** A token (join, admin, worker): 16 to 256 printable ASCII characters without spaces. */
export const tokenText = z
  .string()
  .regex(/^[\x21-\x7e]{16,256}$/, 'must be 16 to 256 printable characters without spaces');

/** A request body limit as `express.json` takes it: `512kb`, `1mb`, `100mb`. */
export const bodyLimitText = z
  .string()
  .trim()
  .regex(/^\d+(\.\d+)?\s*(b|kb|mb|gb)$/i, 'must be a size in b, kb, mb or gb, such as 512kb, 1mb or 100mb');

/**
 * A size given as {@link bodyLimitText} (`16mb`), in bytes, above 0: what `--max-result-size`
 * takes. Sizes are binary (`1kb` is 1,024 bytes), as express reads `--body-limit`.
 */
export const sizeText = bodyLimitText
  .transform((text) => parseSize(text))
  .refine((size) => size > 0, { message: 'must be a size above 0, such as 512kb, 1mb or 100mb' });

/**
 * The bytes in a size such as `100mb` (binary units: `1kb` is 1,024 bytes), read by the `bytes`
 * package, as express reads its body limits.
 * @throws TypeError for text that is not a size.
 */
export function parseSize(text: string): number {
  const size = bytes.parse(text);
  if (size === null || !Number.isFinite(size)) throw new TypeError(`not a size: ${JSON.stringify(text)}`);
  return size;
}

/** A number of bytes as a setting's text, the way {@link sizeText} reads it back: `16mb`, `512kb`. */
export function sizeTextOf(size: number): string {
  return (bytes.format(size, { unitSeparator: '' }) ?? String(size)).toLowerCase();
}

/** An integer from `min` to `max`, digits only (no sign, point or exponent), trimmed: `' 80'` is 80. */
export const integerText = (min: number, max: number) => {
  const message = `must be an integer from ${min} to ${max}`;
  return z
    .string()
    .trim()
    .regex(/^\d+$/, message)
    .transform(Number)
    .pipe(z.number().int().min(min, message).max(max, message));
};

/** A TCP port to listen on, 0 (a free one) to 65535. */
export const portText = integerText(0, 65_535);

/** A host name or IP address to listen on, trimmed: not empty, no spaces inside. */
export const hostText = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .regex(/^\S+$/, 'must be a host name or IP address without spaces');

/**
 * A file (or directory) path, trimmed; only an empty one is refused here (whether the file can
 * be read is checked where it is read).
 * @param message the message for an empty (or blank) path: the CLIs word it differently
 *   (`must be a file path, not empty` in the orchestrator's). @default 'must be a file path'
 */
export const pathText = (message = 'must be a file path') => z.string().trim().min(1, message);

/** The log levels of pino both servers log with, most severe first; `silent` logs nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** One of {@link LOG_LEVELS}. */
export const logLevelText = z.enum(LOG_LEVELS, {
  errorMap: () => ({ message: `must be one of ${LOG_LEVELS.join(', ')}` }),
});

/**
 * A switch: the flag alone (`--open`), or its variable (or `--open=<value>`) as `true`/`1`/`yes` or
 * `false`/`0`/`no`; any other value is refused rather than read as on.
 */
export const switchText = z.union([z.literal(true), z.string()]).transform((value, context) => {
  if (value === true) return true;
  const text = value.trim().toLowerCase();
  if (['true', '1', 'yes'].includes(text)) return true;
  if (['false', '0', 'no', ''].includes(text)) return false;
  context.addIssue({ code: 'custom', message: 'must be true or false (1 or 0, yes or no), or the flag alone' });
  return z.NEVER;
});
