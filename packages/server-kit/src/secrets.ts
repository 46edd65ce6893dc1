/** Masking secret values in text that leaves a process (log lines, error messages, reports). */
import { MASK } from '@mpd/contract';

/** Values shorter than this are not masked: masking `1` or `ok` everywhere would garble every line. */
export const MIN_SECRET_LENGTH = 4;

/** A function replacing every occurrence of the given secret values with `***`. */
export type SecretMasker = (text: string) => string;

/**
 * Makes a masker for `values` (longest first, so a secret containing another is masked whole).
 * Values shorter than {@link MIN_SECRET_LENGTH} are ignored.
 */
export function createSecretMasker(values: Iterable<string>): SecretMasker {
  const secrets = [...new Set(values)]
    .filter((value) => value.length >= MIN_SECRET_LENGTH)
    .sort((a, b) => b.length - a.length);
  if (secrets.length === 0) return (text) => text;
  return (text) => {
    let masked = text;
    for (const secret of secrets) masked = masked.split(secret).join(MASK);
    return masked;
  };
}

/** Masks every string inside a JSON-like value (object keys included), returning a copy. */
export function maskDeep<T>(value: T, mask: SecretMasker): T {
  if (typeof value === 'string') return mask(value) as T;
  if (value instanceof Error) {
    return { type: value.name, message: mask(value.message), stack: value.stack && mask(value.stack) } as T;
  }
  if (Array.isArray(value)) return value.map((item) => maskDeep(item, mask)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [mask(key), maskDeep(item, mask)])) as T;
  }
  return value;
}
