import { describe, expect, it } from 'vitest';
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
