/**
 * Masking secret values in text that leaves a process (log lines, error messages, reports). The
 * secrets of URLs are masked by `@mpd/contract`'s `redactUrl` and `redactUrlsIn`, which the
 * client shares.
 */
import { MASK } from '@mpd/contract';

/** Values shorter than this are not masked: masking `1` or `ok` everywhere would garble every line. */
export const MIN_SECRET_LENGTH = 4;

/** A function replacing every occurrence of the given secret values with `***`. */
export type SecretMasker = (text: string) => string;

/**
 * The values a masker of `values` masks: each once, none shorter than {@link MIN_SECRET_LENGTH},
 * longest first (so a secret containing another is masked whole). For code that must treat
 * secrets as the masker does (a worker's line splitters, which never cut inside one).
 */
export function secretValues(values: Iterable<string>): string[] {
  return [...new Set(values)].filter((value) => value.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
}

/** Makes a masker for `values` (as {@link secretValues} keeps them). */
export function createSecretMasker(values: Iterable<string>): SecretMasker {
  const secrets = secretValues(values);
  if (secrets.length === 0) return (text) => text;
  return (text) => {
    let masked = text;
    for (const secret of secrets) masked = masked.split(secret).join(MASK);
    return masked;
  };
}

/** What {@link maskDeep} puts where a value contains itself. */
export const CIRCULAR = '[Circular]';

/**
 * Masks every string inside a JSON-like value (object keys included), returning a copy: arrays
 * and objects are copied (own enumerable keys), an `Error` becomes `{ type, message, stack }`,
 * a value that contains itself gets {@link CIRCULAR} there, other values are kept.
 *
 * It walks with its own stack, never by recursion: what it masks (run events with module
 * results, a module's log fields) comes from modules and the wire and may be nested to any
 * depth; a recursive walk overflowed the call stack at a few thousand levels.
 */
export function maskDeep<T>(value: T, mask: SecretMasker): T {
  if (!isContainer(value)) return maskLeaf(value, mask) as T;
  /** A container being copied: its source, its copy, and the keys still to copy. */
  interface Frame {
    source: object;
    copy: unknown[] | Record<string, unknown>;
    keys: readonly string[] | undefined;
    next: number;
  }
  /** Containers on the path from the root to the current one: meeting one again is a cycle. */
  const open = new Set<object>();
  /** Containers copied already: a value shared by two places is copied once. */
  const copies = new Map<object, unknown>();
  const enter = (source: object): Frame => {
    open.add(source);
    return Array.isArray(source)
      ? { source, copy: new Array<unknown>(source.length), keys: undefined, next: 0 }
      : { source, copy: {}, keys: Object.keys(source), next: 0 };
  };
  const root = enter(value);
  const stack: Frame[] = [root];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    const { source, copy, keys } = frame;
    const length = keys ? keys.length : (source as unknown[]).length;
    if (frame.next === length) {
      stack.pop();
      open.delete(source);
      copies.set(source, copy);
      continue;
    }
    const index = frame.next++;
    const key = keys ? keys[index]! : index;
    const child = (source as Record<string | number, unknown>)[key];
    let masked: unknown;
    if (!isContainer(child)) masked = maskLeaf(child, mask);
    else if (open.has(child)) masked = CIRCULAR;
    else if (copies.has(child)) masked = copies.get(child);
    else {
      const childFrame = enter(child);
      stack.push(childFrame);
      masked = childFrame.copy;
    }
    if (typeof key === 'number') (copy as unknown[])[key] = masked;
    else setKey(copy as Record<string, unknown>, mask(key), masked);
  }
  return root.copy as T;
}

/** An array or an object whose keys are copied: not null, not an Error. */
function isContainer(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !(value instanceof Error);
}

function maskLeaf(value: unknown, mask: SecretMasker): unknown {
  if (typeof value === 'string') return mask(value);
  if (value instanceof Error) {
    return { type: value.name, message: mask(value.message), stack: value.stack && mask(value.stack) };
  }
  return value;
}

/** Sets `key` as an own property: an own `__proto__` key (JSON.parse makes one) stays a key. */
function setKey(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}
