/**
 * The values the fuzzer puts in bodies, paths and headers: JSON that `JSON.stringify` cannot
 * write (numbers past a double, deep nesting, `__proto__` as a key), and weird strings,
 * numbers and keys.
 */
import fc from 'fast-check';

/** What JSON text needs from the request it goes into. */
export interface JsonContext {
  /** The credential of the worker the request names, if the orchestrator issued one. */
  ownCredential: string | undefined;
}

/** JSON text spliced into the body verbatim (numbers JSON.stringify cannot write, deep nesting). */
class Raw {
  constructor(readonly text: string) {}
}
/** Resolved when the request is sent: the credential of the worker the request names. */
class OwnCredential {}
export const OWN_CREDENTIAL = new OwnCredential();

/** An object with these own keys (`__proto__` included: it must become a key, not the prototype). */
export function objectOf(entries: readonly (readonly [string, unknown])[]): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (const [key, value] of entries) {
    Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return object;
}

export const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' &&
  value !== null &&
  !Array.isArray(value) &&
  !(value instanceof Raw) &&
  !(value instanceof OwnCredential);

/**
 * A deep copy to mutate: generated values can share objects (constants, values fast-check
 * replays while shrinking), and a mutation must change neither them nor itself into a cycle.
 */
export function clone(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(clone);
  if (isPlainObject(value)) return objectOf(Object.keys(value).map((key) => [key, clone(value[key])]));
  return value;
}

/** JSON text of a generated value (Raw spliced in, `__proto__` kept as a key). */
export function toJson(value: unknown, context: JsonContext): string {
  if (value instanceof Raw) return value.text;
  if (value instanceof OwnCredential) return JSON.stringify(context.ownCredential ?? 'mpdw_not-a-credential-0000');
  if (Array.isArray(value)) return `[${value.map((item) => toJson(item, context)).join(',')}]`;
  if (isPlainObject(value)) {
    const parts = Object.keys(value).map((key) => `${JSON.stringify(key)}:${toJson(value[key], context)}`);
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** A long string made of a short one, cheap to generate and to shrink. */
const hugeString = fc
  .tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 4 }), fc.integer({ min: 300, max: 200_000 }))
  .map(([unit, length]) => unit.repeat(Math.ceil(length / unit.length)).slice(0, length));

const TRICKY_STRINGS = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\r\n',
  '\t',
  '\u001b[31m',
  '\u202e',
  '\ufeff',
  '\ud800',
  '\udfff',
  '💥',
  'ñ',
  'İ',
  '../../../../etc/passwd',
  '%',
  '%00',
  '%zz',
  '${jndi:ldap://x}',
  '<script>alert(1)</script>',
  "' OR 1=1 --",
  'null',
  'undefined',
  'NaN',
  'Infinity',
  '-1',
  '1e309',
  '0x10',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'a'.repeat(256),
  'a'.repeat(257),
  '!',
  '~',
  'a b',
  '\u007f',
];
/** Values the fields mean something to: TimeSpans, timestamps, URLs. */
const FIELD_STRINGS = [
  '00:00:00',
  '00:00:00.0000001',
  '-00:00:01',
  '23:59:59.9999999',
  '24:00:00',
  '99:99:99',
  '24.20:31:23.647',
  '24.20:31:23.648',
  '10675199.02:48:05.4775807',
  '10675200.00:00:00',
  `${'9'.repeat(400)}.00:00:00`,
  '1:2:3',
  '2025-09-30T10:00:00Z',
  '2025-09-30T10:00:00.123456789+14:00',
  '0000-01-01T00:00:00Z',
  '9999-12-31T23:59:59Z',
  '2025-02-30T25:61:61Z',
  '+275760-09-13T00:00:00Z',
  'http://127.0.0.1:9',
  'https://[::1]:0/',
  'http://user:pass@host',
  'http://x%00y',
  'HTTP://EXAMPLE.COM',
  'http://127.0.0.1:99999',
  'javascript:alert(1)',
  'file:///etc/passwd',
  `http://${'a'.repeat(2100)}`,
];
export const weirdString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 3, arbitrary: fc.constantFrom(...TRICKY_STRINGS) },
  { weight: 3, arbitrary: fc.constantFrom(...FIELD_STRINGS) },
  { weight: 1, arbitrary: hugeString },
);
const weirdNumber: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    0,
    -1,
    1,
    0.5,
    -0.5,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    2 ** 53 + 2,
    -(2 ** 53),
    1e308,
    -1e308,
    5e-324,
  ),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc
    .constantFrom('1e400', '-1e400', '-0', '1E-400', '123456789012345678901234567890', '1.0', '0.0000001')
    .map((text) => new Raw(text)),
);
export const weirdKey: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'then', ''),
  fc.string({ unit: 'binary', maxLength: 12 }),
);
/** Arrays or objects nested up to 20,000 deep. */
const deepNesting = fc
  .tuple(fc.integer({ min: 50, max: 20_000 }), fc.boolean())
  .map(
    ([depth, arrays]) =>
      new Raw(arrays ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`),
  );

export const weirdValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: weirdString },
  { weight: 3, arbitrary: weirdNumber },
  { weight: 2, arbitrary: fc.constantFrom(null, true, false, {}, []) },
  { weight: 1, arbitrary: deepNesting },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.array(weirdString, { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.array(fc.tuple(weirdKey, weirdString), { maxLength: 4 }).map(objectOf) },
);
