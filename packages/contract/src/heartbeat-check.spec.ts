import { describe, expect, it } from 'vitest';
import { expectSameVerdict } from '../test/same-verdict.js';
import { LIMITS } from './limits.js';
import { heartbeatRequestCheck, heartbeatRequestSchema } from './workers.schema.js';

/** What a worker sends (`orchestrator-link.ts`). */
const heartbeat = {
  workerId: 'worker-machine1-abc123',
  currentLoad: 2,
  timestamp: '2026-12-01T03:00:00.123Z',
  executions: ['run-1.build.1', 'run-1.test.1'],
  incarnation: 'V1StGXR8_Z5jdHi6B-myT',
};
const slots = (count: number) => Array.from({ length: count }, (_, index) => `run-1.m${index}.1`);

/** Heartbeats the schema takes or refuses: the check must agree on every one. */
const CASES: Array<[string, unknown]> = [
  ["a worker's heartbeat", heartbeat],
  ["the spec's heartbeat", { workerId: 'worker-machine1-abc123', currentLoad: 2, timestamp: '2025-09-30T10:00:30Z' }],
  ['workerId and currentLoad only', { workerId: 'w1', currentLoad: 0 }],
  ['no executions running', { ...heartbeat, executions: [] }],
  ['as many executions as slots', { ...heartbeat, executions: slots(LIMITS.capabilities.maxSlots) }],
  ['one execution more than slots', { ...heartbeat, executions: slots(LIMITS.capabilities.maxSlots + 1) }],
  ['executions not an array', { ...heartbeat, executions: 'run-1.build.1' }],
  ['executions null', { ...heartbeat, executions: null }],
  ['an empty execution id', { ...heartbeat, executions: [''] }],
  ['an execution id with a space', { ...heartbeat, executions: ['run 1'] }],
  ['the longest execution id', { ...heartbeat, executions: ['x'.repeat(LIMITS.identifier.maxLength)] }],
  ['an execution id too long', { ...heartbeat, executions: ['x'.repeat(LIMITS.identifier.maxLength + 1)] }],
  ['an execution id not a string', { ...heartbeat, executions: [7] }],
  ['finished executions', { ...heartbeat, finished: ['run-1.lint.1'] }],
  ['as many finished as slots', { ...heartbeat, finished: slots(LIMITS.capabilities.maxSlots) }],
  ['one finished more than slots', { ...heartbeat, finished: slots(LIMITS.capabilities.maxSlots + 1) }],
  ['finished not an array', { ...heartbeat, finished: 'run-1.lint.1' }],
  ['a finished execution id with a space', { ...heartbeat, finished: ['run 1'] }],
  ['a timestamp with an offset', { ...heartbeat, timestamp: '2026-12-01T04:00:00+01:00' }],
  ['a timestamp with a compact offset', { ...heartbeat, timestamp: '2026-12-01T04:00:00+0100' }],
  ['a timestamp without a zone', { ...heartbeat, timestamp: '2026-12-01T03:00:00' }],
  ['a date without a time', { ...heartbeat, timestamp: '2026-12-01' }],
  ['a timestamp with a space for T', { ...heartbeat, timestamp: '2026-12-01 03:00:00Z' }],
  ['a month 13', { ...heartbeat, timestamp: '2026-13-01T03:00:00Z' }],
  ['a timestamp not a string', { ...heartbeat, timestamp: 1_764_558_000_000 }],
  ['a null timestamp', { ...heartbeat, timestamp: null }],
  ['an undefined timestamp', { ...heartbeat, timestamp: undefined }],
  ['an empty incarnation', { ...heartbeat, incarnation: '' }],
  ['an incarnation with a space', { ...heartbeat, incarnation: 'a b' }],
  ['an incarnation too long', { ...heartbeat, incarnation: 'x'.repeat(LIMITS.identifier.maxLength + 1) }],
  ['an incarnation not a string', { ...heartbeat, incarnation: 1 }],
  ['a negative load', { ...heartbeat, currentLoad: -1 }],
  ['a fractional load', { ...heartbeat, currentLoad: 1.5 }],
  ['a load as text', { ...heartbeat, currentLoad: '1' }],
  ['a huge load', { ...heartbeat, currentLoad: 1e300 }],
  ['no load', { workerId: 'w1' }],
  ['no workerId', { currentLoad: 0 }],
  ['a workerId with a space', { ...heartbeat, workerId: 'w 1' }],
  ['a workerId starting with a dot', { ...heartbeat, workerId: '.w1' }],
  ['a workerId with a slash', { ...heartbeat, workerId: 'w1/../w2' }],
  ['the longest workerId', { ...heartbeat, workerId: 'w'.repeat(LIMITS.workerId.maxLength) }],
  ['a workerId too long', { ...heartbeat, workerId: 'w'.repeat(LIMITS.workerId.maxLength + 1) }],
  ['an empty workerId', { ...heartbeat, workerId: '' }],
  ['a workerId not a string', { ...heartbeat, workerId: 12 }],
  ['a key of its own', { ...heartbeat, status: 'Available' }],
  ['an array body', [heartbeat]],
  ['a text body', 'heartbeat'],
  ['null', null],
];

describe('heartbeatRequestCheck', () => {
  it.each(CASES)('takes or refuses what heartbeatRequestSchema does: %s', (_, body) => {
    expectSameVerdict(heartbeatRequestCheck, heartbeatRequestSchema, body);
  });

  it("takes a worker's heartbeat as it came, without a copy", () => {
    const check = heartbeatRequestCheck.safeParse(heartbeat);
    expect(check.success && check.data).toBe(heartbeat);
  });

  it("refuses with the schema's issues, naming the field at fault", () => {
    const check = heartbeatRequestCheck.safeParse({ ...heartbeat, executions: ['run-1.build.1', 'run 1'] });
    expect(check.success).toBe(false);
    expect(check.error?.issues.map((issue) => issue.path.join('.'))).toEqual(['executions.1']);
  });
});
