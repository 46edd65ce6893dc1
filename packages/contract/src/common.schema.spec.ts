import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  ERROR_STATUS,
  errorBody,
  errorBodySchema,
  errorCodeSchema,
  errorResponse,
  ISO_DATE_TIME,
  isoDateTimeSchema,
} from './common.schema.js';
import { executeModuleRequestSchema } from './execution.schema.js';
import { LIMITS } from './limits.js';
import { orchestratorContract } from './orchestrator.contract.js';
import { truncateText } from './validation.js';
import { workerContract } from './worker.contract.js';

describe('ERROR_STATUS and errorResponse', () => {
  it('gives every error code a 4xx or 5xx status', () => {
    expect(Object.keys(ERROR_STATUS).sort()).toEqual([...errorCodeSchema.options].sort());
    for (const status of Object.values(ERROR_STATUS)) {
      expect(status).toBeGreaterThanOrEqual(400);
      expect(status).toBeLessThan(600);
    }
  });

  it("answers the code's status with the contract's error body", () => {
    const issues = [{ field: 'body.workerId', message: 'must not be empty' }];
    expect(errorResponse('ValidationFailed', 'body.workerId: must not be empty', issues)).toEqual({
      status: 400,
      body: { success: false, code: 'ValidationFailed', errorMessage: 'body.workerId: must not be empty', issues },
    });
    const notFound = errorResponse('WorkerNotFound', "Worker 'w1' is not registered");
    expect(notFound).toEqual({
      status: 404,
      body: { success: false, code: 'WorkerNotFound', errorMessage: "Worker 'w1' is not registered" },
    });
    expect(errorBodySchema.parse(notFound.body)).toEqual(notFound.body);
  });

  it('uses only statuses some route of the contracts declares', () => {
    const declared = new Set<number>();
    const walk = (router: object): void => {
      for (const entry of Object.values(router)) {
        if ('method' in entry && 'responses' in entry) {
          for (const status of Object.keys(entry.responses as object)) declared.add(Number(status));
        } else walk(entry);
      }
    };
    walk(orchestratorContract);
    walk(workerContract);
    // 404 RouteNotFound answers paths no route has; every other status is one a route declares.
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      if (code === 'RouteNotFound') continue;
      expect(declared, `${code} → ${status}`).toContain(status);
    }
  });
});

describe('errorBody: bounded whatever it is given', () => {
  const { maxBytes, maxIssues, maxTextLength, maxMessageLength } = LIMITS.errorAnswer;
  const size = (body: unknown) => Buffer.byteLength(JSON.stringify(body));

  // Issue 11: 100,000 bad entries answered 14 MB, a million 154 MB.
  it('keeps the first issues and counts the rest in omittedIssues', () => {
    const issues = Array.from({ length: 100_000 }, (_, i) => ({
      field: `body.tags.${i}`,
      message: 'must not be empty',
    }));
    const body = errorBody('ValidationFailed', 'x'.repeat(50_000), issues);
    expect(body.issues).toHaveLength(maxIssues);
    expect(body.issues![0]).toEqual({ field: 'body.tags.0', message: 'must not be empty' });
    expect(body.omittedIssues).toBe(100_000 - maxIssues);
    expect(body.errorMessage).toHaveLength(maxMessageLength);
    expect(body.errorMessage.endsWith('…')).toBe(true);
    expect(errorBodySchema.parse(body)).toEqual(body);
    expect(size(body)).toBeLessThanOrEqual(maxBytes);
  });

  it('cuts long texts, and drops issues while the JSON (escapes and all) is over the byte bound', () => {
    const control = '\u0001'.repeat(10_000); // six bytes each in JSON
    const issues = Array.from({ length: 50 }, () => ({ field: `body.${control}`, message: control }));
    const body = errorBody('ValidationFailed', control, issues, 7);
    expect(size(body)).toBeLessThanOrEqual(maxBytes);
    expect(body.issues!.length).toBeGreaterThan(0);
    expect(body.issues!.every((issue) => issue.message.length <= maxTextLength)).toBe(true);
    expect(body.issues!.length + body.omittedIssues!).toBe(50 + 7);
    expect(errorBodySchema.parse(body)).toEqual(body);
  });

  it('never ends a cut text in half a surrogate pair', () => {
    const text = truncateText('😀'.repeat(maxTextLength), 10);
    expect(text).toHaveLength(9);
    expect(text).toBe('😀😀😀😀…');
  });

  it('leaves a small body as it is, without omittedIssues', () => {
    const issues = [{ field: 'body.workerId', message: 'must not be empty' }];
    expect(errorBody('ValidationFailed', 'body.workerId: must not be empty', issues)).toEqual({
      success: false,
      code: 'ValidationFailed',
      errorMessage: 'body.workerId: must not be empty',
      issues,
    });
  });
});

describe('isoDateTimeSchema: one RegExp, made once', () => {
  afterEach(() => vi.restoreAllMocks());
  const message = 'must be an ISO-8601 timestamp such as 2025-09-30T10:00:00Z';
  const zods = z.string().datetime({ offset: true, message });

  it('parses timestamps without building a RegExp per parse, as zod 3.25 does for its datetime check', () => {
    const body = {
      executionId: 'run.build.1',
      moduleTypeName: 'build',
      serializedModule: 'null',
      timestamp: '2025-09-30T10:00:00.123Z',
    };
    const made = vi.spyOn(globalThis, 'RegExp');
    for (let index = 0; index < 10; index++) {
      expect(isoDateTimeSchema.safeParse('2025-09-30T10:00:00Z').success).toBe(true);
      expect(executeModuleRequestSchema.safeParse(body).success).toBe(true);
    }
    expect(made).not.toHaveBeenCalled();
  });

  it.each<unknown>([
    '2025-09-30T10:00:00Z',
    '2025-09-30T10:00:00.123456Z',
    '2025-09-30T10:00:00+02:00',
    '2025-09-30T10:00:00-0530',
    '2025-09-30T10:00Z',
    '2024-02-29T00:00:00Z',
    '2025-02-29T00:00:00Z',
    '2025-13-01T00:00:00Z',
    '2025-09-30T24:00:00Z',
    '2025-09-30T10:00:00',
    '2025-09-30 10:00:00Z',
    '2025-09-30',
    '',
    ' 2025-09-30T10:00:00Z',
    12,
    null,
    undefined,
    { at: '2025-09-30T10:00:00Z' },
  ])("takes and refuses %j as zod's own datetime check does, with its issue and message", (value) => {
    const [ours, theirs] = [isoDateTimeSchema.safeParse(value), zods.safeParse(value)];
    expect([ours.success, ours.data, ours.error?.issues]).toEqual([theirs.success, theirs.data, theirs.error?.issues]);
    expect(ISO_DATE_TIME.test(String(value))).toBe(zods.safeParse(String(value)).success);
  });

  it('keeps its check when zod copies it (.describe() rebuilds a schema from its definition)', () => {
    const described = isoDateTimeSchema.describe('when it was sent');
    expect(described.description).toBe('when it was sent');
    expect(described.safeParse('2025-09-30T10:00:00+02:00').success).toBe(true);
    expect(described.safeParse('yesterday').error?.issues[0]?.message).toBe(message);
  });

  it('keeps its place in an object: the issue names the field, with the same message', () => {
    const result = executeModuleRequestSchema.safeParse({
      executionId: 'run.build.1',
      moduleTypeName: 'build',
      serializedModule: 'null',
      timestamp: 'yesterday',
    });
    expect(result.error?.issues).toEqual([
      { code: 'invalid_string', validation: 'datetime', message, path: ['timestamp'] },
    ]);
  });
});
