import { tmpdir } from 'node:os';
import { LIMITS } from '@mpd/contract';
import { defineModule } from '@mpd/pipeline';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ResultLimitError } from '../errors.js';
import { startExecution } from './execution.js';
import { checkedResult, resultTooLargeError } from './result-limits.js';

const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);

describe('checkedResult', () => {
  it('passes a result within the limits through unchanged', () => {
    expect(checkedResult('m', '{"a":1}', 100)).toBe('{"a":1}');
    expect(checkedResult('m', nested(LIMITS.json.maxDepth), 10_000)).toBe(nested(LIMITS.json.maxDepth));
  });

  it('refuses a result over maxResultBytes, naming the module, its size, the limit and the flag', () => {
    const text = JSON.stringify('x'.repeat(2 * 1024 * 1024));
    let thrown: unknown;
    try {
      checkedResult('big', text, 1024 * 1024);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ResultLimitError);
    expect(thrown).toMatchObject({
      name: 'ResultLimitError',
      code: 'ResultTooLarge',
      message:
        "Module 'big' returned a result of 2 MiB (2,097,154 bytes) as JSON, over the limit of 1 MiB (1,048,576 bytes): the worker's --max-result-size (maxResultBytes) sets the limit; return less, or keep large data elsewhere (a file, an artifact store) and return where it is",
    });
  });

  it("resultTooLargeError (a module host's result file, known by its size) says what checkedResult says of the same size", () => {
    const text = JSON.stringify('x'.repeat(2 * 1024 * 1024));
    expect(() => checkedResult('big', text, 1024 * 1024)).toThrow(
      resultTooLargeError('big', Buffer.byteLength(text), 1024 * 1024).message,
    );
    expect(resultTooLargeError('big', 2_000, 1_024)).toMatchObject({
      name: 'ResultLimitError',
      code: 'ResultTooLarge',
    });
  });

  it('refuses a result nested deeper than LIMITS.json.maxDepth, naming the depth', () => {
    expect(() => checkedResult('deep', nested(3_500), 1_000_000)).toThrow(
      "Module 'deep' returned a result nested 3,500 levels deep, over the limit of 1,000 levels: return flatter data",
    );
  });
});

describe('startExecution with a result over the limits', () => {
  const options = {
    workerId: 'worker-1',
    defaultTimeoutMs: 60_000,
    workingDirectory: tmpdir(),
    maxResultBytes: 1024,
    logger: pino({ level: 'silent' }),
  };
  const request = {
    executionId: 'exec-1',
    moduleTypeName: 'm',
    params: undefined,
    dependencyResults: {},
    environmentVariables: {},
    fingerprint: 'f',
  };

  it('fails the module alone, with the limit in its message, before anything is sent', async () => {
    const big = defineModule({ name: 'big', run: () => 'x'.repeat(2_000) });
    const outcome = await startExecution(big, request, options).outcome;
    expect(outcome.status).toBe(500);
    expect(outcome.body).toMatchObject({
      success: false,
      exceptionType: 'ResultLimitError',
      failureKind: 'Error',
      errorMessage: expect.stringMatching(
        /^Module 'big' returned a result of 2 KiB \(2,002 bytes\) as JSON, over the limit of 1 KiB \(1,024 bytes\)/,
      ),
    });
    const small = defineModule({ name: 'small', run: () => 'x'.repeat(1_000) });
    expect((await startExecution(small, request, options).outcome).status).toBe(200);
  });
});
