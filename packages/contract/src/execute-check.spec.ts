import { describe, expect, it } from 'vitest';
import { expectSameVerdict } from '../test/same-verdict.js';
import { executeModuleRequestCheck, executeModuleRequestSchema } from './execution.schema.js';
import { LIMITS } from './limits.js';

/** What an orchestrator sends (`pipeline-runner.ts` `dispatch`). */
const execute = {
  executionId: 'run-0123456789abcdef.build.1',
  moduleTypeName: 'build',
  serializedModule: '{"sleepMs":0}',
  dependencyResults: { compile: '{"ok":true}', lint: '"clean"' },
  environmentVariables: { CI: 'true', TOKEN: 'hunter22' },
  secretEnvironmentVariables: ['TOKEN'],
  workingDirectory: '/srv/build',
  timeout: '00:10:00',
  timestamp: '2026-12-01T14:40:00.123Z',
};
const { secretEnvironmentVariables: _s, workingDirectory: _w, timeout: _t, timestamp: _ts, ...required } = execute;
const names = (count: number) => Array.from({ length: count }, (_, index) => `NAME_${index}`);
/** A JSON body's `__proto__` key: an own property, as `JSON.parse` makes it. */
const withProtoKey = (record: string) => JSON.parse(`{"__proto__":"x","${record}":"y"}`) as Record<string, string>;

/** Execute bodies the schema takes or refuses: the check must agree on every one. */
const CASES: Array<[string, unknown]> = [
  ["an orchestrator's execute", execute],
  ['the required fields only', required],
  ['no dependencies, no environment', { ...execute, dependencyResults: {}, environmentVariables: {} }],
  ['no dependencyResults (the schema fills in {})', { ...execute, dependencyResults: undefined }],
  ['no environmentVariables (the schema fills in {})', (({ environmentVariables: _e, ...rest }) => rest)(execute)],
  ['dependencyResults null', { ...execute, dependencyResults: null }],
  ['dependencyResults an array', { ...execute, dependencyResults: ['{}'] }],
  ['a dependency result not text', { ...execute, dependencyResults: { compile: { ok: true } } }],
  ['a dependency named by an empty key', { ...execute, dependencyResults: { '': '1' } }],
  [
    'the longest dependency name',
    { ...execute, dependencyResults: { ['m'.repeat(LIMITS.moduleTypeName.maxLength)]: '1' } },
  ],
  [
    'a dependency name too long',
    { ...execute, dependencyResults: { ['m'.repeat(LIMITS.moduleTypeName.maxLength + 1)]: '1' } },
  ],
  ['a dependency named __proto__', { ...execute, dependencyResults: withProtoKey('compile') }],
  ['an environment variable named __proto__', { ...execute, environmentVariables: withProtoKey('CI') }],
  ['an environment value not text', { ...execute, environmentVariables: { CI: true } }],
  ['an environment name empty', { ...execute, environmentVariables: { '': 'x' } }],
  [
    'the longest environment name',
    { ...execute, environmentVariables: { ['E'.repeat(LIMITS.environmentName.maxLength)]: 'x' } },
  ],
  [
    'an environment name too long',
    { ...execute, environmentVariables: { ['E'.repeat(LIMITS.environmentName.maxLength + 1)]: 'x' } },
  ],
  ['no executionId', { ...execute, executionId: undefined }],
  ['an empty executionId', { ...execute, executionId: '' }],
  ['an executionId with a space', { ...execute, executionId: 'run 1' }],
  ['the longest executionId', { ...execute, executionId: 'x'.repeat(LIMITS.identifier.maxLength) }],
  ['an executionId too long', { ...execute, executionId: 'x'.repeat(LIMITS.identifier.maxLength + 1) }],
  ['an executionId not text', { ...execute, executionId: 7 }],
  ['no serializedModule', { ...execute, serializedModule: undefined }],
  ['an empty serializedModule', { ...execute, serializedModule: '' }],
  ['serializedModule not text', { ...execute, serializedModule: { sleepMs: 0 } }],
  ['no moduleTypeName', { ...execute, moduleTypeName: undefined }],
  ['an empty moduleTypeName', { ...execute, moduleTypeName: '' }],
  ['the longest moduleTypeName', { ...execute, moduleTypeName: 'm'.repeat(LIMITS.moduleTypeName.maxLength) }],
  ['a moduleTypeName too long', { ...execute, moduleTypeName: 'm'.repeat(LIMITS.moduleTypeName.maxLength + 1) }],
  ['a moduleTypeName with spaces and slashes (any text)', { ...execute, moduleTypeName: 'build / ünïcode 😀' }],
  ['no secret names', { ...execute, secretEnvironmentVariables: [] }],
  ['as many secret names as allowed', { ...execute, secretEnvironmentVariables: names(LIMITS.execute.maxSecretNames) }],
  ['one secret name too many', { ...execute, secretEnvironmentVariables: names(LIMITS.execute.maxSecretNames + 1) }],
  ['an empty secret name', { ...execute, secretEnvironmentVariables: [''] }],
  [
    'a secret name too long',
    { ...execute, secretEnvironmentVariables: ['S'.repeat(LIMITS.environmentName.maxLength + 1)] },
  ],
  ['a secret name not text', { ...execute, secretEnvironmentVariables: [1] }],
  ['secret names not an array', { ...execute, secretEnvironmentVariables: 'TOKEN' }],
  ['an empty workingDirectory', { ...execute, workingDirectory: '' }],
  ['the longest workingDirectory', { ...execute, workingDirectory: 'd'.repeat(LIMITS.path.maxLength) }],
  ['a workingDirectory too long', { ...execute, workingDirectory: 'd'.repeat(LIMITS.path.maxLength + 1) }],
  ['a workingDirectory not text', { ...execute, workingDirectory: 1 }],
  ['a timeout with days and a fraction', { ...execute, timeout: '1.02:03:04.5' }],
  ['a zero timeout', { ...execute, timeout: '00:00:00' }],
  ['a negative timeout', { ...execute, timeout: '-00:00:01' }],
  ['a timeout that is no TimeSpan', { ...execute, timeout: '10 minutes' }],
  ['a timeout in ms', { ...execute, timeout: 600_000 }],
  ['a null timeout', { ...execute, timeout: null }],
  ['a timestamp with an offset', { ...execute, timestamp: '2026-12-01T15:40:00+01:00' }],
  ['a timestamp without a zone', { ...execute, timestamp: '2026-12-01T14:40:00' }],
  ['a month 13', { ...execute, timestamp: '2026-13-01T14:40:00Z' }],
  ['a timestamp not text', { ...execute, timestamp: 1_764_600_000_000 }],
  ['a key of its own', { ...execute, priority: 1 }],
  ['a key __proto__ of its own', { ...JSON.parse('{"__proto__":{"x":1}}'), ...execute }],
  ['an array body', [execute]],
  ['a text body', 'execute'],
  ['null', null],
  // Not as JSON.parse makes them (a caller of the library's check may pass any value).
  ['dependencyResults a Map', { ...execute, dependencyResults: new Map([['compile', '1']]) }],
  ['environmentVariables a Date', { ...execute, environmentVariables: new Date(0) }],
  [
    'a class instance body',
    new (class Body {
      executionId = execute.executionId;
      serializedModule = execute.serializedModule;
      moduleTypeName = execute.moduleTypeName;
      dependencyResults = {};
      environmentVariables = {};
    })(),
  ],
  ['a body with a null prototype', Object.assign(Object.create(null) as object, required)],
  [
    'environmentVariables with a null prototype',
    { ...execute, environmentVariables: Object.assign(Object.create(null) as object, { CI: 'true' }) },
  ],
  [
    'a body inheriting a timeout that is no TimeSpan',
    Object.assign(Object.create({ timeout: 'not a TimeSpan' }) as object, required),
  ],
  [
    'dependencyResults inheriting a result not text',
    { ...execute, dependencyResults: Object.assign(Object.create({ lint: 1 }) as object, { compile: '1' }) },
  ],
];

describe('executeModuleRequestCheck', () => {
  it.each(CASES)('takes or refuses what executeModuleRequestSchema does: %s', (_, body) => {
    expectSameVerdict(executeModuleRequestCheck, executeModuleRequestSchema, body);
  });

  it("takes an orchestrator's execute as it came, without a copy", () => {
    const check = executeModuleRequestCheck.safeParse(execute);
    expect(check.success && check.data).toBe(execute);
  });

  it('agrees with executeModuleRequestSchema on 2,000 generated bodies (seeded: a drift between the two fails here)', () => {
    const { bodies, taken, fast } = differential(2_000, 1);
    for (const body of bodies) expectSameVerdict(executeModuleRequestCheck, executeModuleRequestSchema, body);
    // The generator reaches both verdicts and the check's own path (not only the schema's).
    expect(taken).toBeGreaterThan(100);
    expect(fast).toBeGreaterThan(30);
  });

  it("refuses with the schema's issues, naming the field at fault", () => {
    const check = executeModuleRequestCheck.safeParse({ ...execute, environmentVariables: { CI: 1 } });
    expect(check.success).toBe(false);
    expect(check.error?.issues.map((issue) => issue.path.join('.'))).toEqual(['environmentVariables.CI']);
  });
});

/**
 * `count` execute bodies from a seeded generator (a linear congruential one, so a failure names
 * a body that comes again): each field valid, at a limit, one past it, of another type, absent or
 * twice (JSON's last one wins); records with keys such as `__proto__` and `constructor`; a few
 * bodies not objects, and a few records not as JSON makes them (a null prototype, a `Map`).
 * Also how many the schema takes, and how many the check takes on its own path.
 */
function differential(count: number, seed: number): { bodies: unknown[]; taken: number; fast: number } {
  let state = seed;
  const random = () => {
    state = (state * 1_103_515_245 + 12_345) & 0x7fffffff;
    return state / 0x7fffffff;
  };
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  const M = LIMITS.moduleTypeName.maxLength;
  const E = LIMITS.environmentName.maxLength;
  const P = LIMITS.path.maxLength;
  const I = LIMITS.identifier.maxLength;
  const ABSENT = Symbol('absent');
  const any = () =>
    pick<unknown>([null, 0, -0, 1, 1.5, true, [], {}, ['x'], { a: 'b' }, '', 'x', ' ', '\u2028', '\ud800', '😀']);
  const key = () =>
    pick(
      ['', 'a', '__proto__', 'constructor', 'toString', 'hasOwnProperty', '0', 'ü', '😀', 'TOKEN', 'valueOf'].concat([
        'm'.repeat(M),
        'm'.repeat(M + 1),
        'E'.repeat(E),
        'E'.repeat(E + 1),
      ]),
    );
  /** A record as JSON text (or a value of another type, as JSON text). */
  const record = (): string => {
    if (random() < 0.1) return JSON.stringify(any());
    const entries: string[] = [];
    const n = Math.floor(random() * 4);
    for (let i = 0; i < n; i++)
      entries.push(
        `${JSON.stringify(key())}:${JSON.stringify(random() < 0.8 ? pick(['', 'x', '{"ok":true}', '\n', '😀']) : any())}`,
      );
    return `{${entries.join(',')}}`;
  };
  const json = (value: unknown) => (value === ABSENT ? ABSENT : JSON.stringify(value));
  const field = (name: string): string | typeof ABSENT => {
    switch (name) {
      case 'executionId':
        return json(
          pick<unknown>(['run-1.build.1', '', 'a b', 'x'.repeat(I), 'x'.repeat(I + 1), 'é', '~', 7, null, ABSENT]),
        );
      case 'serializedModule':
        return json(pick<unknown>(['{}', '', 'not json', 1, null, ABSENT, {}]));
      case 'moduleTypeName':
        return json(
          pick<unknown>([
            'build',
            '',
            'm'.repeat(M),
            'm'.repeat(M + 1),
            'a / ü 😀',
            '😀'.repeat(M / 2),
            1,
            null,
            ABSENT,
          ]),
        );
      case 'dependencyResults':
      case 'environmentVariables':
        return random() < 0.15 ? ABSENT : record();
      case 'secretEnvironmentVariables': {
        if (random() < 0.3) return ABSENT;
        if (random() < 0.15) return json(any());
        const n = pick([0, 1, 2, LIMITS.execute.maxSecretNames, LIMITS.execute.maxSecretNames + 1]);
        // A name at the length limit only first in a list at the count limit, not a third of
        // its names: such lists (a quarter of the bodies) were 350 KB of JSON each, made, parsed
        // and checked for no verdict a list with one of them does not reach, and three quarters
        // of this test's CPU (10.6 s of it, now 2.7 s; 56-67 s on a loaded machine, past the
        // 20 s timeout). As many draws as before: the other bodies are the same.
        const valid = (index: number) => (n > 2 && index > 0 ? ['TOKEN', 'A'] : ['TOKEN', 'A', 'E'.repeat(E)]);
        return json(
          Array.from({ length: n }, (_, index) =>
            random() < 0.97 ? pick(valid(index)) : pick<unknown>(['', 'E'.repeat(E + 1), 1, null]),
          ),
        );
      }
      case 'workingDirectory':
        return json(pick<unknown>([ABSENT, '', '/srv', 'd'.repeat(P), 'd'.repeat(P + 1), 1, null, {}]));
      case 'timeout':
        return json(
          random() < 0.4
            ? ABSENT
            : pick<unknown>([
                '00:00:00',
                '-00:00:00',
                '00:10:00',
                '1.02:03:04.5',
                '-00:00:01',
                '24:00:00',
                '23:59:59.9999999',
                '23:59:59.99999999',
                '00:60:00',
                '10675199.02:48:05.4775807',
                '10675199.02:48:05.4775808',
                '1e3',
                ' 00:00:01',
                '00:00:01\n',
                '',
                '+00:00:01',
                600_000,
                null,
              ]),
        );
      default:
        return json(
          random() < 0.4
            ? ABSENT
            : pick<unknown>([
                '2026-12-01T14:40:00.123Z',
                '2026-12-01T15:40:00+01:00',
                '2026-12-01T14:40:00',
                '2026-13-01T14:40:00Z',
                '2024-02-29T00:00:00Z',
                '2023-02-29T00:00:00Z',
                '2026-12-01t14:40:00z',
                '2026-12-01T14:40Z',
                '2026-12-01T24:00:00Z',
                '',
                123,
                null,
              ]),
        );
    }
  };
  const valid: Record<string, string> = {
    executionId: '"run-1.build.1"',
    serializedModule: '"{}"',
    moduleTypeName: '"build"',
    dependencyResults: '{"a":"1"}',
    environmentVariables: '{"CI":"true"}',
  };
  const NAMES = [
    'executionId',
    'serializedModule',
    'moduleTypeName',
    'dependencyResults',
    'environmentVariables',
    'secretEnvironmentVariables',
    'workingDirectory',
    'timeout',
    'timestamp',
  ];
  const bodies: unknown[] = [];
  let taken = 0;
  let fast = 0;
  for (let b = 0; b < count; b++) {
    const parts: string[] = [];
    for (const name of NAMES) {
      const text = random() < 0.7 && name in valid ? valid[name]! : field(name);
      if (text === ABSENT) continue;
      parts.push(`${JSON.stringify(name)}:${text}`);
      if (random() < 0.03) {
        const twice = field(name);
        parts.push(`${JSON.stringify(name)}:${twice === ABSENT ? '"twice"' : twice}`);
      }
    }
    if (random() < 0.1) parts.push(`${JSON.stringify(key())}:${JSON.stringify(any())}`);
    for (let i = parts.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [parts[i], parts[j]] = [parts[j]!, parts[i]!];
    }
    const body = JSON.parse(
      random() < 0.02 ? pick(['null', '[]', '"x"', '1', '[{}]']) : `{${parts.join(',')}}`,
    ) as unknown;
    if (body !== null && typeof body === 'object' && !Array.isArray(body) && random() < 0.05) {
      const record = body as Record<string, unknown>;
      const name = pick(['dependencyResults', 'environmentVariables']);
      if (typeof record[name] === 'object' && record[name] !== null)
        record[name] =
          random() < 0.5
            ? Object.assign(Object.create(null) as object, record[name])
            : new Map(Object.entries(record[name] as object));
    }
    bodies.push(body);
    if (executeModuleRequestSchema.safeParse(body).success) taken++;
    const checked = executeModuleRequestCheck.safeParse(body);
    if (checked.success && checked.data === body) fast++;
  }
  return { bodies, taken, fast };
}
