import { retryAfterMs } from '@mpd/contract';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  heartbeatRetryMs,
  MAX_RETRY_AFTER_MS,
  UnansweredRegistration,
} from './orchestrator-link.js';

/** A registration round's record of lost answers on a clock the test moves. */
function onClock() {
  let now = 5_000;
  const unanswered = new UnansweredRegistration(() => now);
  return { unanswered, advance: (ms: number) => (now += ms) };
}

describe('UnansweredRegistration: how long a 409 WorkerIdTaken may be the process’s own unread registration', () => {
  it('never, when no attempt may have been served', () => {
    expect(onClock().unanswered.mayHoldTheId(60_000)).toBe(false);
  });

  it('waits at least the default heartbeat timeout when the last orchestrator used a shorter one (a restarted one may not)', () => {
    const { unanswered, advance } = onClock();
    unanswered.noteLost();
    advance(60_001); // past the 60 s timeout learned from the orchestrator before its restart
    expect(unanswered.mayHoldTheId(60_000)).toBe(true);
    advance(DEFAULT_HEARTBEAT_TIMEOUT_MS - 60_001);
    expect(unanswered.mayHoldTheId(60_000)).toBe(true);
    advance(1);
    expect(unanswered.mayHoldTheId(60_000)).toBe(false);
  });

  it('waits the known timeout when it is longer than the default', () => {
    const { unanswered, advance } = onClock();
    unanswered.noteLost();
    advance(299_000);
    expect(unanswered.mayHoldTheId(300_000)).toBe(true);
    advance(1_001);
    expect(unanswered.mayHoldTheId(300_000)).toBe(false);
  });

  it('counts from the last unanswered attempt', () => {
    const { unanswered, advance } = onClock();
    unanswered.noteLost();
    advance(100_000);
    unanswered.noteLost();
    advance(100_000);
    expect(unanswered.mayHoldTheId(60_000)).toBe(true);
  });
});

describe('retryAfterMs: the Retry-After a 409 WorkerIdTaken gives, which the next registration waits', () => {
  const of = (value?: string) =>
    retryAfterMs(new Headers(value === undefined ? {} : { 'retry-after': value }), MAX_RETRY_AFTER_MS);

  it('takes delta-seconds, at most an hour', () => {
    expect(of('121')).toBe(121_000);
    expect(of(' 1 ')).toBe(1_000);
    expect(of('0')).toBe(0);
    expect(of('999999')).toBe(MAX_RETRY_AFTER_MS);
  });

  it('ignores a missing, dated or malformed one (the backoff alone then)', () => {
    for (const value of [undefined, '', 'Wed, 21 Oct 2015 07:28:00 GMT', '-5', '1.5', '12abc', '99999999999'])
      expect(of(value)).toBeUndefined();
    expect(retryAfterMs(undefined, MAX_RETRY_AFTER_MS)).toBeUndefined();
  });
});

describe('heartbeatRetryMs: how long a heartbeat refused 429 waits', () => {
  it("waits the answer's Retry-After where it is longer than the backoff", () => {
    expect(heartbeatRetryMs(50, 42_000, 60_000)).toBe(42_000);
    expect(heartbeatRetryMs(5_000, 1_000, 60_000)).toBe(5_000);
    expect(heartbeatRetryMs(50, undefined, 60_000)).toBe(50);
  });

  it('waits at most until one more heartbeat still lands before the renew deadline, never less than the backoff', () => {
    // A 120 s timeout, a 30 s call deadline, refused 10 s after the last acknowledged heartbeat
    // was sent: 80 s left in which the next heartbeat can be sent and still be answered in time.
    expect(heartbeatRetryMs(50, MAX_RETRY_AFTER_MS, 120_000 - 30_000 - 10_000)).toBe(80_000);
    // A lease shorter than one call deadline leaves no room: the backoff, as without a Retry-After.
    expect(heartbeatRetryMs(50, MAX_RETRY_AFTER_MS, -200)).toBe(50);
    expect(heartbeatRetryMs(50, 3_600_000, 0)).toBe(50);
  });
});
