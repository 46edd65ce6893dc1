import { describe, expect, it } from 'vitest';
import { identifierSchema, workerIdSchema } from './common.schema.js';
import { executeModuleRequestSchema, executeModuleSuccessSchema } from './execution.schema.js';
import { orchestratorContract } from './orchestrator.contract.js';
import {
  describeBytes,
  executeAnswerLimit,
  EXECUTE_ENVELOPE_BYTES,
  formatBytes,
  jsonDepth,
  LIMITS,
  resultLimitProblem,
} from './limits.js';
import {
  heartbeatRequestSchema,
  loadedPipelineSchema,
  workerCapabilitiesSchema,
  workerNodeSchema,
} from './workers.schema.js';

const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);

describe('jsonDepth', () => {
  it('counts nested arrays and objects, not brackets inside strings', () => {
    expect(jsonDepth('1')).toBe(0);
    expect(jsonDepth('"[[["')).toBe(0);
    expect(jsonDepth('[]')).toBe(1);
    expect(jsonDepth('[{"a":[]},{}]')).toBe(3);
    expect(jsonDepth(JSON.stringify({ 'k[{': ['"]', '\\', '\\"[', { x: '\\\\"' }] }))).toBe(3);
    expect(jsonDepth(JSON.stringify([['a\\'], [['b"']]]))).toBe(3);
  });

  it('measures depths no recursive walk survives, quickly', () => {
    const started = performance.now();
    expect(jsonDepth(nested(1_000_000))).toBe(1_000_000);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

describe('resultLimitProblem', () => {
  it('accepts a result within the size and depth limits', () => {
    expect(resultLimitProblem('{"a":[1,2,3]}', 100)).toBeUndefined();
    expect(resultLimitProblem(nested(LIMITS.json.maxDepth), 1_000_000)).toBeUndefined();
    // Exactly at the limit, counted in UTF-8 bytes: 'é' is two.
    expect(resultLimitProblem(JSON.stringify('é'.repeat(49)), 100)).toBeUndefined();
  });

  it('names the size and the limit of a result over it, in UTF-8 bytes', () => {
    expect(resultLimitProblem(JSON.stringify('é'.repeat(50)), 100)).toEqual({
      code: 'ResultTooLarge',
      phrase: 'a result of 102 bytes as JSON, over the limit of 100 bytes',
    });
    expect(resultLimitProblem(JSON.stringify('x'.repeat(3 * 1024 * 1024)), 1024 * 1024)?.phrase).toBe(
      'a result of 3 MiB (3,145,730 bytes) as JSON, over the limit of 1 MiB (1,048,576 bytes)',
    );
  });

  it('names the depth and the limit of a result nested deeper than LIMITS.json.maxDepth', () => {
    expect(resultLimitProblem(nested(3_500), 1_000_000)).toEqual({
      code: 'ResultTooDeep',
      phrase: 'a result nested 3,500 levels deep, over the limit of 1,000 levels',
    });
  });
});

describe('executeAnswerLimit', () => {
  // The worst cases of a result's JSON text travelling as a JSON string inside the answer.
  const texts: Record<string, string> = {
    quotes: JSON.stringify('"'.repeat(5_000)),
    backslashes: JSON.stringify('\\'.repeat(5_000)),
    'control characters': JSON.stringify('\u0001'.repeat(5_000)),
    'lone surrogates': JSON.stringify('\ud800'.repeat(5_000)),
    'non-ASCII': JSON.stringify('€😀'.repeat(2_000)),
    'nested strings': JSON.stringify(JSON.stringify(JSON.stringify({ a: ['"\\'.repeat(1_000)] }))),
  };

  for (const [kind, serializedResult] of Object.entries(texts)) {
    it(`holds the answer to a result of ${kind}`, () => {
      const bytes = Buffer.byteLength(serializedResult);
      const answer = executeModuleSuccessSchema.parse({
        executionId: `run-${'x'.repeat(LIMITS.identifier.maxLength - 4)}`,
        success: true,
        serializedResult,
        duration: '1.02:03:04.5678901',
        startTime: '2025-09-30T10:00:00.000Z',
        endTime: '2025-09-30T10:02:30.000Z',
        workerId: 'w'.repeat(LIMITS.workerId.maxLength),
      });
      expect(Buffer.byteLength(JSON.stringify(answer))).toBeLessThanOrEqual(executeAnswerLimit(bytes));
    });
  }

  it('is twice the result plus the envelope', () => {
    expect(executeAnswerLimit(16 * 1024 * 1024)).toBe(32 * 1024 * 1024 + EXECUTE_ENVELOPE_BYTES);
  });
});

describe('LIMITS, as the schemas apply them', () => {
  it('lets every module name defineModule may accept travel in a registration, an execute request and an execution id', () => {
    const longest = `m${'-'.repeat(LIMITS.moduleName.maxLength - 1)}`;
    expect(LIMITS.moduleName.pattern.test(longest)).toBe(true);
    expect(loadedPipelineSchema.safeParse({ name: 'p', fingerprint: 'sha256:0', modules: [longest] }).success).toBe(
      true,
    );
    expect(
      executeModuleRequestSchema.safeParse({
        executionId: 'e',
        serializedModule: '',
        moduleTypeName: longest,
        dependencyResults: { [longest]: 'null' },
      }).success,
    ).toBe(true);
    // The runner's execution ids: run-<base36 time>-<6 hex>.<module>.<attempt number>.
    const runId = `run-${Number.MAX_SAFE_INTEGER.toString(36)}-abcdef`;
    expect(identifierSchema.safeParse(`${runId}.${longest}.1000`).success).toBe(true);
  });

  it('refuses one character or item past each bound, naming it', () => {
    const identifier = identifierSchema.safeParse('i'.repeat(LIMITS.identifier.maxLength + 1));
    expect(identifier.error?.issues[0]?.message).toBe(`must be at most ${LIMITS.identifier.maxLength} characters`);
    expect(identifierSchema.safeParse('a b').error?.issues[0]?.message).toBe('must be printable ASCII without spaces');
    const capabilities = { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] };
    expect(workerCapabilitiesSchema.safeParse({ ...capabilities, os: 'o'.repeat(LIMITS.name.maxLength) }).success).toBe(
      true,
    );
    expect(
      workerCapabilitiesSchema.safeParse({ ...capabilities, os: 'o'.repeat(LIMITS.name.maxLength + 1) }).success,
    ).toBe(false);
    expect(
      workerCapabilitiesSchema.safeParse({
        ...capabilities,
        tags: Array.from({ length: LIMITS.capabilities.maxListItems + 1 }, (_, index) => `t${index}`),
      }).success,
    ).toBe(false);
    expect(
      loadedPipelineSchema.safeParse({
        name: 'p',
        fingerprint: 'f',
        modules: Array.from({ length: LIMITS.pipeline.maxModules + 1 }, (_, index) => `m${index}`),
      }).success,
    ).toBe(false);
  });

  it('takes the body limit a worker advertises: a positive whole number of bytes', () => {
    const capabilities = { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] };
    expect(workerCapabilitiesSchema.safeParse({ ...capabilities, bodyLimitBytes: 1_048_576 }).success).toBe(true);
    expect(workerCapabilitiesSchema.safeParse({ ...capabilities, bodyLimitBytes: 0 }).success).toBe(false);
    expect(workerCapabilitiesSchema.safeParse({ ...capabilities, bodyLimitBytes: 1.5 }).success).toBe(false);
  });
});

describe('formatBytes and describeBytes', () => {
  it('gives binary units to one decimal, and the exact count beside them', () => {
    expect(formatBytes(900)).toBe('900 B');
    expect(formatBytes(16 * 1024 * 1024)).toBe('16 MiB');
    expect(formatBytes(70_000_002)).toBe('66.8 MiB');
    expect(describeBytes(900)).toBe('900 bytes');
    expect(describeBytes(70_000_002)).toBe('66.8 MiB (70,000,002 bytes)');
  });
});

describe('worker ids (LIMITS.workerId)', () => {
  const rule = `must be ${LIMITS.workerId.alphabet}`;

  it("takes the spec's ids, the default random ids and every unreserved character (RFC 3986)", () => {
    for (const id of [
      'worker-machine1-abc123',
      'worker-123',
      'worker-ci-7-a1b2c3',
      'W_1.2~3-x',
      '9',
      'w'.repeat(128),
    ]) {
      expect(workerIdSchema.safeParse(id).success, id).toBe(true);
    }
  });

  it.each([
    ['w1?evil', 'a query'],
    ['x/../../workers/w2', 'a path'],
    ['runner#2', 'a fragment'],
    ['a/b', 'a slash'],
    ['w%2F1', 'a percent-encoding'],
    ['..', 'a dot-segment'],
    ['.hidden', 'a leading dot'],
    ['-w', 'a leading dash'],
    ['wörker', 'a non-ASCII letter'],
    ['w 1', 'a space'],
    ['w:1', 'a colon'],
  ])('refuses %s (%s), naming the rule', (id) => {
    expect(workerIdSchema.safeParse(id).error?.issues.map((issue) => issue.message)).toEqual([rule]);
  });

  it('refuses an empty id and one past 128 characters', () => {
    expect(workerIdSchema.safeParse('').error?.issues[0]?.message).toBe('must not be empty');
    expect(workerIdSchema.safeParse('w'.repeat(129)).error?.issues[0]?.message).toBe('must be at most 128 characters');
  });

  it('applies wherever a worker id travels: registration, heartbeat, drain and unregister paths', () => {
    const { drain, unregister } = orchestratorContract.workers;
    const node = { endpoint: 'http://w:1', capabilities: {}, lastHeartbeat: '', currentLoad: 0, status: 'Available' };
    expect(workerNodeSchema.shape.id.safeParse('a/b').success).toBe(false);
    expect(workerNodeSchema.safeParse({ ...node, id: 'w1?evil' }).error?.issues[0]).toMatchObject({
      path: ['id'],
      message: rule,
    });
    expect(heartbeatRequestSchema.safeParse({ workerId: 'runner#2', currentLoad: 0 }).error?.issues[0]).toMatchObject({
      path: ['workerId'],
      message: rule,
    });
    for (const route of [drain, unregister]) {
      expect(route.pathParams.safeParse({ workerId: 'x/../../workers/w2' }).success).toBe(false);
      expect(route.pathParams.safeParse({ workerId: 'worker-machine1-abc123' }).success).toBe(true);
    }
  });

  it('execution ids keep the wider identifier alphabet: they travel in bodies only', () => {
    expect(identifierSchema.safeParse('run-1.c:a/b@x.1').success).toBe(true);
  });
});
