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
];

describe('executeModuleRequestCheck', () => {
  it.each(CASES)('takes or refuses what executeModuleRequestSchema does: %s', (_, body) => {
    expectSameVerdict(executeModuleRequestCheck, executeModuleRequestSchema, body);
  });

  it("takes an orchestrator's execute as it came, without a copy", () => {
    const check = executeModuleRequestCheck.safeParse(execute);
    expect(check.success && check.data).toBe(execute);
  });

  it("refuses with the schema's issues, naming the field at fault", () => {
    const check = executeModuleRequestCheck.safeParse({ ...execute, environmentVariables: { CI: 1 } });
    expect(check.success).toBe(false);
    expect(check.error?.issues.map((issue) => issue.path.join('.'))).toEqual(['environmentVariables.CI']);
  });
});
