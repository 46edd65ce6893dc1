import type { WorkerNodeRegistration } from '@mpd/contract';
import { describe, expect, it } from 'vitest';
import { InMemoryNodeRegistry } from '../registry/in-memory-node-registry.js';
import { WorkerPool } from './worker-pool.js';

const FINGERPRINT = 'sha256:pool';

function setup() {
  let now = 1_000_000;
  const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 1_000, now: () => now });
  const running = new Map<string, number>();
  const given = new Map<string, number>();
  const coolingUntil = new Map<string, number>();
  const pool = new WorkerPool(registry, FINGERPRINT, {
    running: (id) => running.get(id) ?? 0,
    given: (id) => given.get(id) ?? 0,
    cooling: (id, at) => (coolingUntil.get(id) ?? 0) > at,
  });
  const register = (id: string, slots = 2, overrides: Partial<WorkerNodeRegistration> = {}) =>
    registry.register({
      id,
      endpoint: `http://${id}:9000`,
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: slots, tags: [] },
      pipeline: { name: 'p', fingerprint: FINGERPRINT, modules: ['a'] },
      ...overrides,
    });
  /** What the runner does on a dispatch. */
  const dispatch = (id: string) => {
    running.set(id, (running.get(id) ?? 0) + 1);
    given.set(id, (given.get(id) ?? 0) + 1);
    pool.update(id, now);
  };
  const answer = (id: string) => {
    running.set(id, (running.get(id) ?? 0) - 1);
    pool.update(id, now);
  };
  return {
    registry,
    pool,
    register,
    dispatch,
    answer,
    coolingUntil,
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('WorkerPool', () => {
  it('picks the least loaded worker (running / slots), then the one given least, then registry order', () => {
    const { pool, register, dispatch, answer, now } = setup();
    register('a', 2);
    register('b', 4);
    register('c', 2);
    pool.sync(now());
    expect(pool.live.map((worker) => worker.id)).toEqual(['a', 'b', 'c']);
    const picks: string[] = [];
    for (let index = 0; index < 8; index++) {
      const worker = pool.pickAny(now())!;
      picks.push(worker.id);
      dispatch(worker.id);
    }
    // a, b, c all idle: registry order. Then b (1/4) beats a and c (1/2); then all at 1/2: a and c
    // were given less than b; then only b has room.
    expect(picks).toEqual(['a', 'b', 'c', 'b', 'a', 'c', 'b', 'b']);
    expect(pool.pickAny(now())).toBeUndefined();
    expect(pool.hasFreeSlot).toBe(false);
    answer('c');
    expect(pool.pickAny(now())?.id).toBe('c');
  });

  it('never picks a worker that went Offline or Draining since it was read, nor one with another pipeline', () => {
    const { registry, pool, register, now, advance } = setup();
    register('old', 2);
    register('other', 8, { pipeline: { name: 'q', fingerprint: 'sha256:other', modules: ['a'] } });
    pool.sync(now());
    expect(pool.live.map((worker) => worker.id)).toEqual(['old']);
    register('fresh', 2);
    advance(600);
    registry.heartbeat('fresh', 0);
    advance(600); // 'old' missed its heartbeats: Offline, with no event yet (no sweep)
    expect(pool.pickAny(now())?.id).toBe('fresh');
    expect(pool.live.map((worker) => worker.id)).toEqual(['fresh']);
    registry.drain('fresh');
    expect(pool.pickAny(now())).toBeUndefined();
  });

  it('skips a worker while it cools down after refusing work', () => {
    const { pool, register, coolingUntil, now, advance } = setup();
    register('a', 2);
    register('b', 2);
    pool.sync(now());
    coolingUntil.set('a', now() + 400);
    pool.update('a', now());
    expect(pool.pickAny(now())?.id).toBe('b');
    expect(pool.pickAmong(pool.live, now())?.id).toBe('b');
    advance(401);
    pool.sync(now());
    expect(pool.pickAny(now())?.id).toBe('a');
  });

  it('filters capable workers per requirement key, and picks among given candidates', () => {
    const { pool, register, dispatch, now } = setup();
    register('plain', 2);
    register('gpu-1', 2, { capabilities: { os: 'linux', installedTools: [], maxParallelModules: 2, tags: ['gpu'] } });
    register('gpu-2', 2, { capabilities: { os: 'linux', installedTools: [], maxParallelModules: 2, tags: ['gpu'] } });
    pool.sync(now());
    const gpu = pool.capable('gpu', { tags: ['gpu'] });
    expect(gpu.map((worker) => worker.id)).toEqual(['gpu-1', 'gpu-2']);
    expect(pool.capable('gpu', { tags: ['gpu'] })).toBe(gpu);
    dispatch('gpu-1');
    expect(pool.pickAmong(gpu, now())?.id).toBe('gpu-2');
  });

  it('reads the registry again after invalidate (a drain raises no event), not every round', () => {
    const { pool, register, registry, now } = setup();
    register('a', 2);
    pool.sync(now());
    expect(pool.live.map((worker) => worker.id)).toEqual(['a']);
    registry.drain('a');
    pool.sync(now());
    expect(pool.live.map((worker) => worker.id)).toEqual(['a']);
    pool.invalidate();
    pool.sync(now());
    expect(pool.live).toEqual([]);
  });

  // Issue 11: every registry event but a member's heartbeat made the pool read the whole registry.
  it('does work proportional to each registry event: new usable workers join without a read; a read only for events of workers it has', () => {
    const { pool, register, registry, now, advance } = setup();
    let reads = 0;
    const snapshot = registry.snapshot.bind(registry);
    registry.snapshot = () => {
      reads++;
      return snapshot();
    };
    register('a', 2);
    register('other', 2, { pipeline: { name: 'q', fingerprint: 'sha256:other', modules: ['a'] } });
    pool.sync(now());
    expect(reads).toBe(1);
    const unconcerned: Array<[string, 'heartbeat' | 'registered']> = [
      ['a', 'heartbeat'],
      ['other', 'heartbeat'],
      ['other', 'registered'],
      ['gone', 'registered'],
    ];
    for (const [workerId, type] of unconcerned) {
      pool.changed(workerId, type);
      pool.sync(now());
    }
    expect(reads).toBe(1);
    // A new usable worker joins without a read, in the lists worked out already too.
    const gpu = { os: ['linux' as const], tags: ['gpu'] };
    expect(pool.capable('gpu', gpu)).toEqual([]);
    register('b', 2, { capabilities: { os: 'linux', installedTools: [], maxParallelModules: 2, tags: ['gpu'] } });
    pool.changed('b', 'registered');
    register('c', 2);
    pool.changed('c', 'registered');
    pool.sync(now());
    expect(reads).toBe(1);
    expect(pool.live.map((worker) => worker.id)).toEqual(['a', 'b', 'c']);
    expect(pool.capable('gpu', gpu).map((worker) => worker.id)).toEqual(['b']);
    expect(pool.pickAny(now())?.id).toBe('a');
    // Any other event of a worker it has makes it read the registry again.
    advance(1_001);
    registry.heartbeat('b', 0);
    registry.heartbeat('c', 0);
    pool.changed('a', 'offline');
    pool.sync(now());
    expect(reads).toBe(2);
    expect(pool.live.map((worker) => worker.id)).toEqual(['b', 'c']);
  });

  it('pick: any live worker for a module without requirements, by the heap', () => {
    const { pool, register, dispatch, now } = setup();
    register('a', 2);
    register('b', 2);
    pool.sync(now());
    const module = { requiresKey: '', lostOn: new Set<string>() };
    expect(pool.pick(module, pool.live, now())?.id).toBe('a');
    dispatch('a');
    expect(pool.pick(module, pool.live, now())?.id).toBe('b');
  });

  it('pick: only among the workers that meet the requirements, least loaded first', () => {
    const { pool, register, dispatch, now } = setup();
    const gpu = { os: 'linux', installedTools: [], maxParallelModules: 2, tags: ['gpu'] };
    register('plain', 2);
    register('gpu-1', 2, { capabilities: gpu });
    register('gpu-2', 2, { capabilities: gpu });
    pool.sync(now());
    const module = { requiresKey: 'gpu', lostOn: new Set<string>() };
    const capable = pool.capable(module.requiresKey, { tags: ['gpu'] });
    const picks: (string | undefined)[] = [];
    for (let index = 0; index < 5; index++) {
      const worker = pool.pick(module, capable, now());
      picks.push(worker?.id);
      if (worker) dispatch(worker.id);
    }
    // 'plain' has a free slot the whole time, and is never chosen.
    expect(picks).toEqual(['gpu-1', 'gpu-2', 'gpu-1', 'gpu-2', undefined]);
    expect(pool.pick({ requiresKey: '', lostOn: new Set() }, pool.live, now())?.id).toBe('plain');
  });

  it('pick: avoids the workers a module was lost on while another capable one is live, even a full one', () => {
    const { pool, register, registry, dispatch, now } = setup();
    register('lost-on', 2);
    register('other', 1);
    pool.sync(now());
    const module = { requiresKey: '', lostOn: new Set(['lost-on']) };
    // 'lost-on' is the less loaded (0/2 against 0/1, then registry order), and still avoided.
    expect(pool.pick(module, pool.live, now())?.id).toBe('other');
    dispatch('other');
    // 'other' is full: the module waits for it rather than going back to 'lost-on'.
    expect(pool.pick(module, pool.live, now())).toBeUndefined();
    // With no other live worker, the one it was lost on takes it.
    registry.unregister('other');
    pool.invalidate();
    pool.sync(now());
    expect(pool.pick(module, pool.live, now())?.id).toBe('lost-on');
  });
});
