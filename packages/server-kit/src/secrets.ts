/** Masking secret values, and the secrets of URLs, in text that leaves a process (log lines, error messages, reports). */
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

/** A URL's scheme and `//`, at the start of a text (`http://`, `s3://`). */
const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
/** A URL scheme's characters after its first (a letter): RFC 3986's `ALPHA / DIGIT / "+" / "-" / "."`. */
const SCHEME_TAIL = /[a-z0-9+.-]/i;
/** A letter, which a URL scheme starts with. */
const LETTER = /[a-z]/i;

/**
 * Where the first `scheme://` in `text` starts, or -1. Linear in the text's length: each `://`
 * is found by `indexOf` and its scheme walked back over once (an unanchored regex, tried at each
 * position, was quadratic: 100,000 characters without `://` took 20 s; review of round L).
 * The scheme is the longest run of scheme characters before `://` from a letter on (`1a+b://`
 * starts at `a`), as the regex's leftmost match was.
 */
function schemeStart(text: string): number {
  let from = 0;
  for (;;) {
    const slashes = text.indexOf('://', from);
    if (slashes === -1) return -1;
    let start = slashes;
    while (start > 0 && SCHEME_TAIL.test(text[start - 1]!)) start--;
    // The leftmost letter of the run: the scheme starts there (digits, `+`, `-`, `.` may not lead).
    while (start < slashes && !LETTER.test(text[start]!)) start++;
    if (start < slashes) return start;
    from = slashes + 1;
  }
}

/**
 * A text given as a URL, as a message may show it: its user name and password (`user:pw@`)
 * replaced by `***@`, its query and fragment by `?…` and `#…` (a query may carry a token:
 * `?access_token=…`, a presigned URL's signature). It reads any text, a URL or not (a setting
 * refused as no URL is exactly what an error echoes): the userinfo runs to the LAST `@` (a
 * password may hold an unescaped `@`, `/`, `?` or space), the query from the first `?` or `#`
 * after it; without `scheme://`, from the text's start. It may mask more than a URL parser would
 * (`http://host/a@b` shows as `http://***@b`), never less.
 *
 * ```ts
 * redactUrl('http://user:pw@ci.example:8080/?token=abc'); // 'http://***@ci.example:8080/?…'
 * ```
 */
export function redactUrl(text: string): string {
  const scheme = SCHEME.exec(text)?.[0] ?? '';
  let rest = text.slice(scheme.length);
  const at = rest.lastIndexOf('@');
  if (at !== -1) rest = `${MASK}@${rest.slice(at + 1)}`;
  const query = rest.search(/[?#]/);
  if (query !== -1) rest = `${rest.slice(0, query + 1)}…`;
  return scheme + rest;
}

/**
 * A text that may hold a URL (`NAME=postgres://user:pw@db`, a list of origins), as a message
 * may show it: from its first `scheme://` to its end read as one URL by {@link redactUrl} (what
 * follows a URL in the same text is masked with it); a text without `scheme://` as it is.
 */
export function redactUrlsIn(text: string): string {
  const start = schemeStart(text);
  return start === -1 ? text : text.slice(0, start) + redactUrl(text.slice(start));
}
