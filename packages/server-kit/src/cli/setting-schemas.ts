/** Zod schemas for the text of command-line settings (flags and environment variables) both CLIs take. */
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
  .regex(/^\d+(\.\d+)?\s*(b|kb|mb|gb)$/i, 'must be a size such as 512kb, 1mb or 100mb');
