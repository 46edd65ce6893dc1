import { MAX_HEARTBEAT_CANCELS, type WorkerNodeRegistration } from '@mpd/contract';
import { describe, expect, it } from 'vitest';
import { OrchestratorConfigError, RegistrationError } from '../errors.js';
import { InMemoryNodeRegistry, type InMemoryNodeRegistryOptions } from './in-memory-node-registry.js';
import type { NodeRegistryEvent } from './node-registry.js';

const START = Date.parse('2025-09-30T10:00:00Z');
const TIMEOUT_MS = 1_000;

function setup(bounds: Omit<InMemoryNodeRegistryOptions, 'heartbeatTimeoutMs' | 'now'> = {}) {
  let now = START;
  const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: TIMEOUT_MS, now: () => now, ...bounds });
  const events: NodeRegistryEvent[] = [];
  registry.onChange((event) => events.push(event));
  return {
    registry,
    events,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const worker = (overrides: Partial<WorkerNodeRegistration> = {}): WorkerNodeRegistration => ({
  id: 'worker-1',
  endpoint: 'http://worker1:9000',
  capabilities: { os: 'linux', installedTools: ['node'], maxParallelModules: 2, tags: [] },
  ...overrides,
});

describe('InMemoryNodeRegistry', () => {
  it('registers a worker as Available with lastHeartbeat = now, ignoring the status and time it sent', () => {
    const { registry } = setup();
    const node = registry.register(
      worker({ status: 'Offline', lastHeartbeat: '2000-01-01T00:00:00Z', currentLoad: 1 }),
    );
    expect(node).toEqual({
      id: 'worker-1',
      endpoint: 'http://worker1:9000',
      capabilities: { os: 'linux', installedTools: ['node'], maxParallelModules: 2, tags: [] },
      lastHeartbeat: '2025-09-30T10:00:00.000Z',
      currentLoad: 1,
      status: 'Available',
    });
    expect(registry.get('worker-1')).toEqual(node);
    expect(registry.get('nobody')).toBeUndefined();
  });

  it('derives Busy from currentLoad >= maxParallelModules, and Available again below it', () => {
    const { registry } = setup();
    registry.register(worker());
    expect(registry.heartbeat('worker-1', 1)?.status).toBe('Available');
    expect(registry.heartbeat('worker-1', 2)?.status).toBe('Busy');
    expect(registry.heartbeat('worker-1', 3)?.status).toBe('Busy');
    expect(registry.heartbeat('worker-1', 0)?.status).toBe('Available');
    expect(registry.get('worker-1')?.currentLoad).toBe(0);
  });

  it("keeps the executions each worker's last heartbeat listed, none before one and after registering again", () => {
    const { registry } = setup();
    registry.register(worker());
    expect(registry.executionsOf('worker-1')).toBeUndefined();
    registry.heartbeat('worker-1', 2, { executions: ['run-1.a.1', 'run-1.b.1'] });
    expect(registry.executionsOf('worker-1')).toEqual(['run-1.a.1', 'run-1.b.1']);
    registry.heartbeat('worker-1', 0, { executions: [] });
    expect(registry.executionsOf('worker-1')).toEqual([]);
    // A heartbeat that lists nothing (an older worker) says nothing about what runs.
    registry.heartbeat('worker-1', 1);
    expect(registry.executionsOf('worker-1')).toBeUndefined();
    registry.heartbeat('worker-1', 1, { executions: ['run-1.c.1'] });
    registry.register(worker());
    expect(registry.executionsOf('worker-1')).toBeUndefined();
    expect(registry.executionsOf('nobody')).toBeUndefined();
  });

  it('is idempotent for the same id: details replaced, one worker, heartbeat time reset', () => {
    const { registry, advance } = setup();
    registry.register(worker({ currentLoad: 1 }));
    advance(900);
    const again = registry.register(
      worker({
        endpoint: 'http://worker1:9001',
        capabilities: { os: 'linux', installedTools: [], maxParallelModules: 8, tags: ['gpu'] },
        pipeline: { name: 'ci', fingerprint: 'sha256:abc', modules: ['build'] },
      }),
    );
    expect(registry.list()).toHaveLength(1);
    expect(again.endpoint).toBe('http://worker1:9001');
    expect(again.capabilities.maxParallelModules).toBe(8);
    expect(again.pipeline).toEqual({ name: 'ci', fingerprint: 'sha256:abc', modules: ['build'] });
    expect(again.currentLoad).toBe(0);
    expect(again.lastHeartbeat).toBe(new Date(START + 900).toISOString());
  });

  it('gives a credential only to whoever presents it: any other registration of the id gets a new one', () => {
    const { registry } = setup();
    registry.register(worker());
    const credential = registry.credentialOf('worker-1')!;
    expect(credential).toMatch(/^mpdw_[\w-]{43}$/);
    registry.register(worker(), { credential });
    expect(registry.credentialOf('worker-1')).toBe(credential);
    registry.register(worker(), { credential: 'mpdw_a-guess' });
    const replaced = registry.credentialOf('worker-1')!;
    expect(replaced).not.toBe(credential);
    expect(registry.workerWithCredential(credential)).toBeUndefined();
    expect(registry.workerWithCredential(replaced)).toBe('worker-1');
    // Another worker's credential is not this one's.
    registry.register(worker({ id: 'worker-2' }));
    registry.register(worker(), { credential: registry.credentialOf('worker-2') });
    expect(registry.credentialOf('worker-1')).not.toBe(replaced);
  });

  it('exclusive: refuses a live id without its credential (WorkerIdTaken), takes it once Offline', () => {
    const { registry, advance } = setup();
    registry.register(worker());
    const credential = registry.credentialOf('worker-1')!;
    const exclusive = (options: { credential?: string } = {}) =>
      registry.register(worker({ endpoint: 'http://other:9000' }), { ...options, exclusive: true });
    expect(() => exclusive()).toThrow(expect.objectContaining({ name: 'RegistrationError', code: 'WorkerIdTaken' }));
    expect(() => exclusive({ credential: 'mpdw_a-guess' })).toThrow(/held by a live worker/);
    expect(registry.get('worker-1')?.endpoint).toBe('http://worker1:9000');
    expect(registry.credentialOf('worker-1')).toBe(credential);
    expect(exclusive({ credential }).endpoint).toBe('http://other:9000');
    expect(registry.credentialOf('worker-1')).toBe(credential);
    advance(TIMEOUT_MS + 1);
    expect(exclusive().status).toBe('Available');
    expect(registry.credentialOf('worker-1')).not.toBe(credential);
  });

  it("exclusive: the holder's own incarnation again without its credential, the credential never used, is refused too (WorkerIdTaken): the incarnation is no secret", () => {
    const { registry, events } = setup();
    const register = (incarnation: string) => registry.register(worker(), { exclusive: true, incarnation });
    register('incarnation-1');
    const credential = registry.credentialOf('worker-1')!;
    registry.requestCancel('worker-1', 'exec-1', 'cancelled');
    expect(() => register('incarnation-1')).toThrow(expect.objectContaining({ code: 'WorkerIdTaken' }));
    // Nothing revoked, nothing issued: the live holder keeps its credential and its cancels.
    expect(registry.credentialOf('worker-1')).toBe(credential);
    expect(registry.workerWithCredential(credential)).toBe('worker-1');
    expect(events.map((event) => event.type)).toEqual(['registered']);
    expect(registry.cancelsFor('worker-1')).toHaveLength(1);
  });

  it("exclusive: WorkerIdTaken gives the whole seconds until the holder's lease ends (at least 1, at most the timeout plus 1)", () => {
    const { registry, advance } = setup({});
    const register = (incarnation: string, credential?: string) =>
      registry.register(worker(), { exclusive: true, incarnation, credential });
    const refusal = (incarnation: string) => {
      try {
        register(incarnation);
      } catch (error) {
        return error as RegistrationError;
      }
      throw new Error('registered');
    };
    register('incarnation-1');
    expect(refusal('incarnation-2')).toMatchObject({ code: 'WorkerIdTaken', retryAfterSeconds: TIMEOUT_MS / 1000 + 1 });
    const credential = registry.credentialOf('worker-1')!;
    advance(400);
    // 600 ms of the lease left: past it (in 1 s, in whole seconds) the holder is Offline.
    expect(refusal('incarnation-1')).toMatchObject({ code: 'WorkerIdTaken', retryAfterSeconds: 1 });
    expect(registry.credentialOf('worker-1')).toBe(credential);
    // Presenting its credential, the holder registers again (and keeps it).
    register('incarnation-1', credential);
    expect(registry.credentialOf('worker-1')).toBe(credential);
    // A clock that stepped back does not lengthen the wait past the timeout.
    advance(-10 * TIMEOUT_MS);
    expect(refusal('incarnation-2')).toMatchObject({ code: 'WorkerIdTaken', retryAfterSeconds: TIMEOUT_MS / 1000 + 1 });
    advance(10 * TIMEOUT_MS + TIMEOUT_MS + 1);
    register('incarnation-3');
    expect(registry.credentialOf('worker-1')).not.toBe(credential);
  });

  it('reports Offline only after the timeout has passed, and live again after a heartbeat', () => {
    const { registry, advance } = setup();
    registry.register(worker());
    advance(TIMEOUT_MS);
    expect(registry.get('worker-1')?.status).toBe('Available');
    advance(1);
    expect(registry.get('worker-1')?.status).toBe('Offline');
    expect(registry.list().map((node) => node.status)).toEqual(['Offline']);
    const back = registry.heartbeat('worker-1', 2);
    expect(back?.status).toBe('Busy');
    expect(back?.lastHeartbeat).toBe(new Date(START + TIMEOUT_MS + 1).toISOString());
  });

  it('sweep emits offline once per outage, and again after a recovery and a new outage', () => {
    const { registry, events, advance } = setup();
    registry.register(worker());
    registry.register(worker({ id: 'worker-2' }));
    events.length = 0;
    expect(registry.sweep()).toEqual([]);
    advance(600);
    registry.heartbeat('worker-2', 0);
    advance(600);
    expect(registry.sweep()).toEqual(['worker-1']);
    expect(registry.sweep()).toEqual([]);
    advance(600);
    expect(registry.sweep()).toEqual(['worker-2']);
    registry.heartbeat('worker-1', 0);
    advance(TIMEOUT_MS + 1);
    expect(registry.sweep()).toEqual(['worker-1']);
    expect(events).toEqual([
      { type: 'heartbeat', workerId: 'worker-2' },
      { type: 'offline', workerId: 'worker-1' },
      { type: 'offline', workerId: 'worker-2' },
      { type: 'heartbeat', workerId: 'worker-1' },
      { type: 'offline', workerId: 'worker-1' },
    ]);
  });

  it('returns undefined / false for unknown ids without emitting', () => {
    const { registry, events } = setup();
    expect(registry.heartbeat('ghost', 0)).toBeUndefined();
    expect(registry.unregister('ghost')).toBe(false);
    expect(registry.drain('ghost')).toBe(false);
    expect(events).toEqual([]);
  });

  it('unregisters a worker and emits registered/heartbeat/unregistered in order', () => {
    const { registry, events } = setup();
    registry.register(worker());
    registry.heartbeat('worker-1', 1);
    expect(registry.unregister('worker-1')).toBe(true);
    expect(registry.list()).toEqual([]);
    expect(registry.unregister('worker-1')).toBe(false);
    expect(events.map((event) => event.type)).toEqual(['registered', 'heartbeat', 'unregistered']);
  });

  it("says on unregistered how long the worker's heartbeat lease still runs (0 once it ended)", () => {
    const { registry, events, advance } = setup();
    registry.register(worker());
    advance(TIMEOUT_MS / 4);
    registry.unregister('worker-1');
    registry.register(worker());
    advance(TIMEOUT_MS + 1);
    registry.unregister('worker-1');
    expect(events.filter((event) => event.type === 'unregistered').map((event) => event.leaseRemainingMs)).toEqual([
      TIMEOUT_MS - TIMEOUT_MS / 4,
      0,
    ]);
  });

  it('drains: Draining while live (even when busy), kept on re-registration, Offline wins', () => {
    const { registry, advance } = setup();
    registry.register(worker());
    expect(registry.drain('worker-1')).toBe(true);
    expect(registry.get('worker-1')?.status).toBe('Draining');
    expect(registry.heartbeat('worker-1', 5)?.status).toBe('Draining');
    expect(registry.register(worker()).status).toBe('Draining');
    advance(TIMEOUT_MS + 1);
    expect(registry.get('worker-1')?.status).toBe('Offline');
  });

  it('lists workers in registration order with their current status', () => {
    const { registry, advance } = setup();
    registry.register(worker({ id: 'a' }));
    advance(600);
    registry.register(worker({ id: 'b', currentLoad: 2 }));
    registry.register(worker({ id: 'c' }));
    registry.drain('c');
    advance(600);
    expect(registry.list().map((node) => [node.id, node.status])).toEqual([
      ['a', 'Offline'],
      ['b', 'Busy'],
      ['c', 'Draining'],
    ]);
  });

  it('hands out copies: changing a returned node does not change the registry', () => {
    const { registry } = setup();
    const node = registry.register(worker());
    node.capabilities.maxParallelModules = 1;
    node.status = 'Offline';
    expect(registry.get('worker-1')?.capabilities.maxParallelModules).toBe(2);
    expect(registry.get('worker-1')?.status).toBe('Available');
  });

  it('snapshot: the same nodes as list, shared and frozen, made again only when they change', () => {
    const { registry, advance } = setup();
    registry.register(worker({ pipeline: { name: 'ci', fingerprint: 'sha256:abc', modules: ['build'] } }));
    const [first] = registry.snapshot();
    expect(first).toEqual(registry.list()[0]);
    expect(Object.isFrozen(first)).toBe(true);
    expect(Object.isFrozen(first!.capabilities.tags)).toBe(true);
    expect(registry.snapshot()[0]).toBe(first);
    expect(registry.snapshotOf('worker-1')).toBe(first);
    expect(registry.snapshotOf('nobody')).toBeUndefined();
    advance(TIMEOUT_MS + 1);
    expect(registry.snapshotOf('worker-1')?.status).toBe('Offline');
    registry.heartbeat('worker-1', 2);
    expect(registry.snapshot()[0]).toMatchObject({ status: 'Busy', currentLoad: 2 });
    registry.drain('worker-1');
    expect(registry.snapshotOf('worker-1')?.status).toBe('Draining');
  });

  it('keeps one copy of a pipeline its workers share, and copies of it in what list and get hand out', () => {
    const { registry } = setup();
    const pipeline = { name: 'ci', fingerprint: 'sha256:abc', modules: ['build', 'test'] };
    registry.register(worker({ id: 'a', pipeline: structuredClone(pipeline) }));
    registry.register(worker({ id: 'b', pipeline: structuredClone(pipeline) }));
    registry.register(worker({ id: 'c', pipeline: { ...pipeline, modules: ['build'] } })); // same fingerprint, other content
    const [a, b, c] = registry.snapshot();
    expect(a!.pipeline).toBe(b!.pipeline);
    expect(c!.pipeline).not.toBe(a!.pipeline);
    expect(c!.pipeline?.modules).toEqual(['build']);
    const listed = registry.get('a')!;
    listed.pipeline!.modules.push('deploy');
    expect(registry.get('b')?.pipeline?.modules).toEqual(['build', 'test']);
    registry.unregister('a');
    registry.register(worker({ id: 'b', pipeline: { name: 'ci', fingerprint: 'sha256:def', modules: ['x'] } }));
    expect(registry.get('b')?.pipeline).toEqual({ name: 'ci', fingerprint: 'sha256:def', modules: ['x'] });
    registry.register(worker({ id: 'd', pipeline: structuredClone(pipeline) }));
    expect(registry.get('d')?.pipeline).toEqual(pipeline);
  });

  it('unsubscribes, and keeps notifying other listeners when one throws', () => {
    let now = START;
    const failures: string[] = [];
    const registry = new InMemoryNodeRegistry({
      heartbeatTimeoutMs: TIMEOUT_MS,
      now: () => now,
      onListenerError: (error, event) => failures.push(`${event.type}: ${(error as Error).message}`),
    });
    const seen: string[] = [];
    const stop = registry.onChange((event) => seen.push(event.type));
    registry.onChange(() => {
      throw new Error('listener broke');
    });
    registry.register(worker());
    stop();
    now += 10;
    registry.heartbeat('worker-1', 0);
    expect(seen).toEqual(['registered']);
    expect(failures).toEqual(['registered: listener broke', 'heartbeat: listener broke']);
    expect(registry.get('worker-1')?.lastHeartbeat).toBe(new Date(START + 10).toISOString());
  });

  it('refuses a timeout that is not a positive number, and a negative or fractional load', () => {
    expect(() => new InMemoryNodeRegistry({ heartbeatTimeoutMs: 0 })).toThrow(OrchestratorConfigError);
    expect(() => new InMemoryNodeRegistry({ heartbeatTimeoutMs: Number.NaN })).toThrow(/heartbeatTimeoutMs/);
    const { registry } = setup();
    registry.register(worker());
    expect(() => registry.heartbeat('worker-1', -1)).toThrow(RangeError);
    expect(() => registry.heartbeat('worker-1', 1.5)).toThrow(/currentLoad/);
  });

  describe('incarnations', () => {
    it('a registration with another incarnation replaces the worker: replaced, then registered', () => {
      const { registry, events } = setup();
      registry.register(worker(), { incarnation: 'first' });
      registry.register(worker(), { incarnation: 'first' }); // the same process again: no replacement
      expect(registry.incarnationOf('worker-1')).toBe('first');
      registry.register(worker({ endpoint: 'http://worker1:9100' }), { incarnation: 'second' });
      expect(events.map((event) => event.type)).toEqual(['registered', 'registered', 'replaced', 'registered']);
      expect(registry.incarnationOf('worker-1')).toBe('second');
      // None after one, and one after none, are other processes too; none twice is the same (older workers).
      registry.register(worker());
      registry.register(worker());
      registry.register(worker(), { incarnation: 'third' });
      expect(events.slice(4).map((event) => event.type)).toEqual([
        'replaced',
        'registered',
        'registered',
        'replaced',
        'registered',
      ]);
    });

    it("says on replaced how long the old incarnation's heartbeat lease still runs (0 once it ended)", () => {
      const { registry, events, advance } = setup();
      registry.register(worker(), { incarnation: 'first' });
      advance(TIMEOUT_MS / 4);
      registry.register(worker(), { incarnation: 'second' });
      advance(TIMEOUT_MS + 1);
      registry.register(worker(), { incarnation: 'third' });
      expect(events.filter((event) => event.type === 'replaced').map((event) => event.leaseRemainingMs)).toEqual([
        TIMEOUT_MS - TIMEOUT_MS / 4,
        0,
      ]);
    });

    it('emits replaced while the old registration still holds the id, so listeners see what it was', () => {
      const { registry } = setup();
      registry.register(worker(), { incarnation: 'old' });
      const seen: Array<string | undefined> = [];
      registry.onChange((event) => event.type === 'replaced' && seen.push(registry.incarnationOf(event.workerId)));
      registry.register(worker(), { incarnation: 'new' });
      expect(seen).toEqual(['old']);
    });

    it('refuses a heartbeat, drain or unregister from a replaced incarnation (WorkerReplaced); none given is taken', () => {
      const { registry, events } = setup();
      registry.register(worker(), { incarnation: 'new' });
      for (const call of [
        () => registry.heartbeat('worker-1', 1, { incarnation: 'old' }),
        () => registry.drain('worker-1', { incarnation: 'old' }),
        () => registry.unregister('worker-1', { incarnation: 'old' }),
      ]) {
        expect(call).toThrow(RegistrationError);
        expect(call).toThrow(expect.objectContaining({ code: 'WorkerReplaced' }));
      }
      expect(registry.get('worker-1')).toMatchObject({ currentLoad: 0, status: 'Available' });
      expect(events.map((event) => event.type)).toEqual(['registered']);
      expect(registry.heartbeat('worker-1', 1, { incarnation: 'new' })?.currentLoad).toBe(1);
      expect(registry.heartbeat('worker-1', 2)?.currentLoad).toBe(2);
      expect(registry.drain('worker-1')).toBe(true);
      expect(registry.unregister('worker-1', { incarnation: 'new' })).toBe(true);
    });

    it('a heartbeat naming an incarnation is refused when the id was registered since without one', () => {
      const { registry } = setup();
      registry.register(worker(), { incarnation: 'process-1' });
      registry.register(worker()); // someone else, without an incarnation
      expect(() => registry.heartbeat('worker-1', 0, { incarnation: 'process-1' })).toThrow(/replaced/);
    });
  });

  describe('pending cancels', () => {
    it('keeps cancels until settled, newest reason last, while Offline too', () => {
      const { registry, advance } = setup();
      registry.register(worker(), { incarnation: 'a' });
      expect(registry.cancelsFor('worker-1')).toEqual([]);
      expect(registry.requestCancel('worker-1', 'exec-1', 'lost')).toBe(true);
      expect(registry.requestCancel('worker-1', 'exec-2', 'timed out')).toBe(true);
      expect(registry.requestCancel('worker-1', 'exec-1', 'run stopping')).toBe(true);
      expect(registry.requestCancel('nobody', 'exec-3', 'lost')).toBe(false);
      expect(registry.cancelsFor('worker-1')).toEqual([
        { executionId: 'exec-2', reason: 'timed out' },
        { executionId: 'exec-1', reason: 'run stopping' },
      ]);
      // The same list for every heartbeat until it changes.
      expect(registry.cancelsFor('worker-1')).toBe(registry.cancelsFor('worker-1'));
      advance(TIMEOUT_MS + 1);
      registry.sweep();
      expect(registry.get('worker-1')?.status).toBe('Offline');
      registry.heartbeat('worker-1', 0, { incarnation: 'a' });
      registry.register(worker(), { incarnation: 'a' }); // the same process registering again keeps them
      registry.cancelSettled('worker-1', 'exec-2');
      registry.cancelSettled('worker-1', 'unknown');
      registry.cancelSettled('nobody', 'exec-1');
      expect(registry.cancelsFor('worker-1')).toEqual([{ executionId: 'exec-1', reason: 'run stopping' }]);
    });

    it('drops the cancels of a replaced or unregistered worker', () => {
      const { registry } = setup();
      registry.register(worker(), { incarnation: 'a' });
      registry.requestCancel('worker-1', 'exec-1', 'lost');
      registry.register(worker(), { incarnation: 'b' });
      expect(registry.cancelsFor('worker-1')).toEqual([]);
      registry.requestCancel('worker-1', 'exec-2', 'lost');
      registry.unregister('worker-1');
      registry.register(worker(), { incarnation: 'b' });
      expect(registry.cancelsFor('worker-1')).toEqual([]);
      expect(registry.cancelsFor('nobody')).toEqual([]);
    });

    it(`keeps at most MAX_HEARTBEAT_CANCELS (${MAX_HEARTBEAT_CANCELS}) per worker, dropping the oldest`, () => {
      const { registry } = setup();
      registry.register(worker());
      for (let i = 0; i < MAX_HEARTBEAT_CANCELS + 5; i++) registry.requestCancel('worker-1', `exec-${i}`, 'lost');
      const cancels = registry.cancelsFor('worker-1');
      expect(cancels).toHaveLength(MAX_HEARTBEAT_CANCELS);
      expect(cancels[0]!.executionId).toBe('exec-5');
      expect(cancels.at(-1)!.executionId).toBe(`exec-${MAX_HEARTBEAT_CANCELS + 4}`);
    });
  });

  describe('bounds (issue 11: a registry without bounds)', () => {
    const RETENTION_MS = 5_000;
    const pipeline = (name: string, modules = ['build', 'test']) => ({ name, fingerprint: `sha256:${name}`, modules });
    /** What the registry does when `registration` is refused: the error's code and Retry-After. */
    const refusal = (registration: () => unknown) => {
      try {
        registration();
      } catch (error) {
        expect(error).toBeInstanceOf(RegistrationError);
        const { code, retryAfterSeconds, message } = error as RegistrationError;
        return { code, retryAfterSeconds, message };
      }
      throw new Error('the registration passed');
    };

    it('removes an Offline worker the offline retention after it went Offline (offline, then removed), with its credential and pipeline', () => {
      const { registry, events, advance } = setup({ offlineRetentionMs: RETENTION_MS });
      registry.register(worker({ id: 'gone', pipeline: pipeline('p') }));
      registry.register(worker({ id: 'live' }));
      const credential = registry.credentialOf('gone')!;
      events.length = 0;
      // Offline at TIMEOUT_MS; removed once the retention has passed since then, not before.
      advance(TIMEOUT_MS + 1);
      registry.heartbeat('live', 0);
      expect(registry.sweep()).toEqual(['gone']);
      advance(RETENTION_MS - 1);
      registry.heartbeat('live', 0);
      registry.sweep();
      expect(registry.get('gone')?.status).toBe('Offline');
      advance(1);
      registry.heartbeat('live', 0);
      expect(registry.sweep()).toEqual([]);
      expect(registry.list().map((node) => node.id)).toEqual(['live']);
      expect(registry.workerWithCredential(credential)).toBeUndefined();
      expect(registry.heartbeat('gone', 0)).toBeUndefined(); // it registers again when it comes back
      expect(events.filter((event) => event.type !== 'heartbeat')).toEqual([
        { type: 'offline', workerId: 'gone' },
        { type: 'removed', workerId: 'gone' },
      ]);
    });

    it('a sweep that finds a worker past the retention at once says offline before removed; a heartbeat in time keeps it', () => {
      const { registry, events, advance } = setup({ offlineRetentionMs: RETENTION_MS });
      registry.register(worker({ id: 'a' }));
      registry.register(worker({ id: 'b' }));
      advance(TIMEOUT_MS + RETENTION_MS - 10);
      registry.heartbeat('b', 0); // back just before its removal
      advance(11);
      events.length = 0;
      expect(registry.sweep()).toEqual(['a']);
      expect(events).toEqual([
        { type: 'offline', workerId: 'a' },
        { type: 'removed', workerId: 'a' },
      ]);
      expect(registry.list().map((node) => node.id)).toEqual(['b']);
    });

    it('removes a worker at once when it unregisters: listed no more, its credential and pipeline released', () => {
      const { registry } = setup({ maxPipelines: 1 });
      registry.register(worker({ id: 'a', pipeline: pipeline('p') }));
      const credential = registry.credentialOf('a')!;
      expect(registry.unregister('a')).toBe(true);
      expect(registry.list()).toEqual([]);
      expect(registry.workerWithCredential(credential)).toBeUndefined();
      // Its pipeline went with it: another one fits the bound of one.
      registry.register(worker({ id: 'b', pipeline: pipeline('q') }));
    });

    it('maxWorkers: a new id past it is refused (TooManyWorkers, Retry-After until the next removal); a known id always registers again', () => {
      const { registry, advance } = setup({ maxWorkers: 2, offlineRetentionMs: RETENTION_MS });
      registry.register(worker({ id: 'a' }));
      advance(1_000);
      registry.register(worker({ id: 'b' }));
      const full = refusal(() => registry.register(worker({ id: 'c' })));
      // 'a' is removed at its last heartbeat + timeout + retention: 6 s after it registered, 5 s from now.
      expect(full).toEqual({
        code: 'TooManyWorkers',
        retryAfterSeconds: (TIMEOUT_MS + RETENTION_MS - 1_000) / 1_000,
        message: expect.stringContaining(
          "The registry holds 2 workers, its limit (--max-workers 2, Offline ones included until removed): worker 'c'",
        ),
      });
      // Known ids pass, Offline or not, with or without their credential.
      registry.register(worker({ id: 'a', endpoint: 'http://elsewhere:9000' }));
      advance(TIMEOUT_MS + 1);
      registry.register(worker({ id: 'b' }));
      // Room again once one goes.
      registry.unregister('a');
      registry.register(worker({ id: 'c' }));
      expect(registry.list().map((node) => node.id)).toEqual(['b', 'c']);
      expect(refusal(() => registry.register(worker({ id: 'd' }))).code).toBe('TooManyWorkers');
      advance(TIMEOUT_MS + RETENTION_MS + 1);
      registry.sweep();
      registry.register(worker({ id: 'd' }));
      expect(registry.list().map((node) => node.id)).toEqual(['d']);
    });

    it('maxPipelines: distinct pipelines are shared and counted, refused past the bound (TooManyPipelines), released with their last worker', () => {
      const { registry } = setup({ maxPipelines: 2 });
      registry.register(worker({ id: 'a1', pipeline: pipeline('a') }));
      registry.register(worker({ id: 'a2', pipeline: pipeline('a') }));
      expect(registry.snapshotOf('a1')!.pipeline).toBe(registry.snapshotOf('a2')!.pipeline);
      registry.register(worker({ id: 'b1', pipeline: pipeline('b') }));
      registry.register(worker({ id: 'none' })); // no pipeline: nothing to hold
      expect(refusal(() => registry.register(worker({ id: 'c1', pipeline: pipeline('c') })))).toMatchObject({
        code: 'TooManyPipelines',
        retryAfterSeconds: expect.any(Number),
        message: expect.stringContaining(
          "distinct pipelines, its limit (--max-pipelines 2): worker 'c1' advertises another one ('c', sha256:c)",
        ),
      });
      // Same fingerprint, other modules: another pipeline too.
      expect(
        refusal(() => registry.register(worker({ id: 'c1', pipeline: { ...pipeline('a'), modules: ['x'] } }))).code,
      ).toBe('TooManyPipelines');
      // Its only holder moving to another pipeline makes room for it; a known pipeline always fits.
      registry.register(worker({ id: 'b1', pipeline: pipeline('c') }));
      registry.register(worker({ id: 'c2', pipeline: pipeline('c') }));
      // 'a' is released only with its last holder.
      registry.unregister('a1');
      expect(refusal(() => registry.register(worker({ id: 'd1', pipeline: pipeline('d') }))).code).toBe(
        'TooManyPipelines',
      );
      registry.register(worker({ id: 'a2', pipeline: pipeline('c') }));
      registry.register(worker({ id: 'd1', pipeline: pipeline('d') }));
      expect(registry.list().map((node) => [node.id, node.pipeline?.name])).toEqual([
        ['a2', 'c'],
        ['b1', 'c'],
        ['none', undefined],
        ['c2', 'c'],
        ['d1', 'd'],
      ]);
    });

    it('refuses bounds out of range (OrchestratorConfigError naming the option)', () => {
      for (const [bounds, setting] of [
        [{ offlineRetentionMs: -1 }, 'offlineRetentionMs'],
        [{ maxWorkers: 0 }, 'maxWorkers'],
        [{ maxWorkers: 1.5 }, 'maxWorkers'],
        [{ maxPipelines: Number.NaN }, 'maxPipelines'],
      ] as const) {
        expect(() => setup(bounds)).toThrow(expect.objectContaining({ name: 'OrchestratorConfigError', setting }));
      }
      setup({ offlineRetentionMs: 0 });
    });
  });
});

describe('InMemoryNodeRegistry: a stale duplicate of a registration served under the holder’s registration key', () => {
  const KEY = 'k'.repeat(43);
  const OTHER_KEY = 'o'.repeat(43);
  const registerWith = (
    registry: InMemoryNodeRegistry,
    sequence: number,
    options: { retryKey?: string; incarnation?: string } = {},
  ) => registry.register(worker(), { exclusive: true, incarnation: 'i-1', retryKey: KEY, sequence, ...options });
  const refusal = (register: () => unknown): RegistrationError => {
    try {
      register();
    } catch (error) {
      if (error instanceof RegistrationError) return error;
      throw error;
    }
    throw new Error('the registration was taken');
  };

  it('is refused past the holder’s lease (not yet removed) as within it: it neither revokes the credential in use nor renews a stalled holder’s lastHeartbeat', () => {
    const { registry, advance } = setup();
    registerWith(registry, 1); // served, its answer lost
    registerWith(registry, 2); // the retry, read
    const credential = registry.credentialOf('worker-1')!;
    expect(registry.authenticate(credential)).toBe('worker-1'); // used: a heartbeat
    const lastHeartbeat = registry.get('worker-1')!.lastHeartbeat;
    advance(TIMEOUT_MS + 1); // the holder stalls past its lease; no sweep yet
    for (const sequence of [1, 2]) {
      // A gateway's late copy of an attempt served: the holder's key, a sequence served.
      expect(refusal(() => registerWith(registry, sequence)).code).toBe('WorkerIdTaken');
      expect(registry.credentialOf('worker-1')).toBe(credential);
      expect(registry.get('worker-1')).toMatchObject({ lastHeartbeat, status: 'Offline' });
    }
    // Anyone else takes an Offline id as before (another key, or none).
    registerWith(registry, 1, { retryKey: OTHER_KEY, incarnation: 'i-2' });
    expect(registry.credentialOf('worker-1')).not.toBe(credential);
  });

  it('tells the holder’s own process (its key and incarnation, its credential unread) to try again in 1 s, where anyone else waits the lease', () => {
    const { registry } = setup();
    const registry60 = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000, now: () => START });
    for (const held of [registry, registry60]) {
      registerWith(held, 1);
      // The process's own attempt again (a gateway's retry of it): its next attempt is its retry.
      expect(refusal(() => registerWith(held, 1)).retryAfterSeconds).toBe(1);
    }
    expect(refusal(() => registerWith(registry60, 1, { retryKey: OTHER_KEY })).retryAfterSeconds).toBe(61);
    expect(refusal(() => registerWith(registry60, 1, { incarnation: 'i-2' })).retryAfterSeconds).toBe(61);
    // Its credential used: the holder has read it, this is no process waiting for it.
    registry60.authenticate(registry60.credentialOf('worker-1')!);
    expect(refusal(() => registerWith(registry60, 1)).retryAfterSeconds).toBe(61);
    // The retry itself is taken.
    const fresh = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000, now: () => START });
    registerWith(fresh, 1);
    expect(refusal(() => registerWith(fresh, 1)).retryAfterSeconds).toBe(1);
    expect(registerWith(fresh, 2).id).toBe('worker-1');
  });
});
