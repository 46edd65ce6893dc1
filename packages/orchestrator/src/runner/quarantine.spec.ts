import { describe, expect, it } from 'vitest';
import { retryAfterMs } from '@mpd/contract';
import { Quarantine, REFUSAL_PROBATION } from './quarantine.js';

describe('Quarantine', () => {
  // Jitter at its ceiling: the probation is the whole backoff step.
  const quarantine = () => new Quarantine(() => 1);

  it('a refused worker leaves with its first heartbeat after the probation, which doubles with each refusal', () => {
    const q = quarantine();
    expect(q.empty).toBe(true);
    expect(q.add('w', 'refused', 'ECONNREFUSED', 0)).toBe(true);
    expect(q.add('w', 'broken', 'again', 0)).toBe(false); // the first reason stays
    expect(q.get('w')).toEqual({ kind: 'refused', reason: 'ECONNREFUSED', since: 0, probationUntil: 5_000 });
    expect(q.describe('w', 1_000)).toBe(
      'quarantined for this run (ECONNREFUSED) until it registers again, or heartbeats after 00:00:04',
    );
    expect(q.heartbeat('w', 4_999)).toBe(false);
    expect(q.heartbeat('w', 5_000)).toBe(true);
    expect(q.has('w')).toBe(false);
    q.add('w', 'refused', 'ECONNREFUSED', 10_000);
    expect(q.get('w')!.probationUntil).toBe(20_000);
    for (let times = 2; times < 8; times++) {
      q.registered('w');
      q.add('w', 'refused', 'ECONNREFUSED', 0);
    }
    expect(q.get('w')!.probationUntil).toBe(REFUSAL_PROBATION.maxMs);
  });

  it('a new start of the worker (another incarnation) starts its refusals afresh: its probation is the first one again, no longer the longest', () => {
    const q = quarantine();
    for (let times = 0; times < 5; times++) {
      q.registered('w'); // the same process registering again keeps its count
      q.add('w', 'refused', 'ECONNREFUSED', 0);
    }
    expect(q.probationAtLongest('w')).toBe(true);
    expect(q.newStart('w')).toBe(true);
    expect(q.has('w')).toBe(false);
    expect(q.probationAtLongest('w')).toBe(false);
    q.add('w', 'refused', 'ECONNREFUSED', 0);
    expect(q.get('w')!.probationUntil).toBe(REFUSAL_PROBATION.initialMs);
    expect(q.newStart('w')).toBe(true);
    expect(q.newStart('w')).toBe(false);
  });

  it("a gateway's Retry-After lengthens a refusal's probation, at most to the longest one; a shorter one leaves the backoff", () => {
    const q = quarantine();
    q.add('w', 'refused', 'answered 429', 0, 30_000);
    expect(q.get('w')!.probationUntil).toBe(30_000);
    q.registered('w');
    q.add('w', 'refused', 'answered 503', 0, 3_600_000);
    expect(q.get('w')!.probationUntil).toBe(REFUSAL_PROBATION.maxMs);
    q.registered('w');
    q.add('w', 'refused', 'answered 503', 0, 1_000);
    expect(q.get('w')!.probationUntil).toBe(20_000); // the third refusal's backoff
    expect(retryAfterMs(new Headers({ 'retry-after': '12' }))).toBe(12_000);
    expect(retryAfterMs(new Headers({ 'retry-after': 'Wed, 21 Oct 2015 07:28:00 GMT' }))).toBeUndefined();
    expect(retryAfterMs(new Headers({ 'retry-after': '-1' }))).toBeUndefined();
    expect(retryAfterMs(new Headers())).toBeUndefined();
    expect(retryAfterMs(undefined)).toBeUndefined();
  });

  it('a broken endpoint stays quarantined whatever its heartbeats, until the worker registers again', () => {
    const q = quarantine();
    q.add('w', 'broken', 'answered 404 RouteNotFound', 0);
    expect(q.heartbeat('w', 3_600_000)).toBe(false);
    expect(q.describe('w', 0)).toBe('quarantined for this run (answered 404 RouteNotFound) until it registers again');
    expect(q.registered('w')).toBe(true);
    expect(q.has('w')).toBe(false);
    expect(q.describe('w', 0)).toBeUndefined();
    expect(q.registered('w')).toBe(false);
  });
});
