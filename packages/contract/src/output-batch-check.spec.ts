import { describe, expect, it } from 'vitest';
import { expectSameVerdict } from '../test/same-verdict.js';
import { LIMITS } from './limits.js';
import { outputBatchCheck, outputBatchSchema } from './output.schema.js';

const line = { time: 1_764_547_200_000, stream: 'stdout', text: 'compiling' };
const batch = { workerId: 'w1', fromSeq: 0, lines: [line, { ...line, stream: 'log', level: 'warn' }] };

/** Batches the schema takes or refuses: the check must agree on every one. */
const CASES: Array<[string, unknown]> = [
  ['a plain batch', batch],
  ['a final batch', { ...batch, final: true }],
  ['no lines', { ...batch, lines: [] }],
  ['the most lines', { ...batch, lines: Array.from({ length: LIMITS.output.maxLinesPerBatch }, () => line) }],
  ['one line too many', { ...batch, lines: Array.from({ length: LIMITS.output.maxLinesPerBatch + 1 }, () => line) }],
  ['the longest line', { ...batch, lines: [{ ...line, text: 'x'.repeat(LIMITS.output.maxLineLength) }] }],
  ['a line too long', { ...batch, lines: [{ ...line, text: 'x'.repeat(LIMITS.output.maxLineLength + 1) }] }],
  ['a time that is not an integer', { ...batch, lines: [{ ...line, time: 1.5 }] }],
  ['a negative time', { ...batch, lines: [{ ...line, time: -1 }] }],
  ['a time past the last date', { ...batch, lines: [{ ...line, time: 8.64e15 + 1 }] }],
  ['an unknown stream', { ...batch, lines: [{ ...line, stream: 'stdin' }] }],
  ['an unknown level', { ...batch, lines: [{ ...line, level: 'fatal' }] }],
  ['a null level', { ...batch, lines: [{ ...line, level: null }] }],
  ['text not a string', { ...batch, lines: [{ ...line, text: 42 }] }],
  ['a line not an object', { ...batch, lines: ['text'] }],
  ['a line that is null', { ...batch, lines: [null] }],
  ['a line with a key of its own', { ...batch, lines: [{ ...line, extra: 1 }] }],
  ['a batch with a key of its own', { ...batch, extra: 1 }],
  ['final not a boolean', { ...batch, final: 'yes' }],
  ['a negative fromSeq', { ...batch, fromSeq: -1 }],
  ['fromSeq past the safe integers', { ...batch, fromSeq: 2 ** 53 }],
  ['no workerId', { fromSeq: 0, lines: [] }],
  ['an invalid workerId', { ...batch, workerId: 'w 1' }],
  ['lines not an array', { ...batch, lines: {} }],
  ['an array body', [batch]],
  ['null', null],
];

describe('outputBatchCheck', () => {
  it.each(CASES)('takes or refuses what outputBatchSchema does: %s', (_, body) => {
    expectSameVerdict(outputBatchCheck, outputBatchSchema, body);
  });

  it('takes a plain batch as it came, without a copy of its lines', () => {
    const check = outputBatchCheck.safeParse(batch);
    expect(check.success && check.data).toBe(batch);
  });

  it("refuses with the schema's issues, naming the line and field at fault", () => {
    const body = { ...batch, lines: [line, { ...line, text: 'x'.repeat(LIMITS.output.maxLineLength + 1) }] };
    const check = outputBatchCheck.safeParse(body);
    expect(check.success).toBe(false);
    expect(check.error?.issues.map((issue) => issue.path.join('.'))).toEqual(['lines.1.text']);
  });
});
