import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HeartbeatLease } from './heartbeat-lease.js';

let now = 0;
let events: string[] = [];

function lease(): HeartbeatLease {
  return new HeartbeatLease({
    now: () => now,
    onExpired: (timeoutMs) => events.push(`expired after ${timeoutMs}`),
    onRenewed: () => events.push('renewed'),
  });
}

/** Moves the clock and the fake timers on together. */
function advance(ms: number): void {
  now += ms;
  vi.advanceTimersByTime(ms);
}

beforeEach(() => {
  vi.useFakeTimers();
  now = 1_000;
  events = [];
});
afterEach(() => vi.useRealTimers());

describe('HeartbeatLease', () => {
  it('expires the timeout after the acknowledged heartbeat was sent, not after its answer came', () => {
    const held = lease();
    expect(held.state).toBe('none');
    const sentAt = now;
    advance(800); // the answer took 0.8 s to come back
    held.renew(sentAt, 5_000);
    expect(held.state).toBe('held');
    advance(4_199);
    expect(events).toEqual([]);
    advance(1);
    expect(held.state).toBe('expired');
    expect(events).toEqual(['expired after 5000']);
    advance(60_000);
    expect(events).toEqual(['expired after 5000']); // once per expiry
  });

  it('each acknowledgement moves the end on; an older one (answered out of order) does not move it back', () => {
    const held = lease();
    held.renew(now, 5_000);
    advance(3_000);
    held.renew(now, 5_000); // ends at 9_000
    held.renew(now - 2_500, 5_000); // a slower, older call answered last: ignored
    advance(4_999);
    expect(held.state).toBe('held');
    advance(1);
    expect(held.state).toBe('expired');
  });

  it('an acknowledgement after expiry renews it (once it is within the timeout), and says so', () => {
    const held = lease();
    held.renew(now, 5_000);
    advance(5_000);
    expect(held.state).toBe('expired');
    // A call stuck in transit, sent before the expiry and answered after: renews nothing.
    held.renew(now - 5_000, 5_000);
    expect(held.state).toBe('expired');
    held.renew(now, 5_000);
    expect(held.state).toBe('held');
    expect(events).toEqual(['expired after 5000', 'renewed']);
    advance(5_000);
    expect(events).toEqual(['expired after 5000', 'renewed', 'expired after 5000']);
  });

  it('waits past the longest Node timer without firing early', () => {
    const held = lease();
    const forty = 40 * 24 * 3_600_000;
    held.renew(now, forty);
    advance(2 ** 31); // one longest timer has fired: checked, re-armed
    expect(held.state).toBe('held');
    advance(forty - 2 ** 31);
    expect(held.state).toBe('expired');
  });

  it('stops: no callback after stop', () => {
    const held = lease();
    held.renew(now, 1_000);
    held.stop();
    advance(5_000);
    expect(events).toEqual([]);
    expect(held.state).toBe('none');
  });
});
