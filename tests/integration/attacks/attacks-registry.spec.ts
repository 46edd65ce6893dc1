/**
 * Issue 11, case 3: a registry without bounds. Floods of registrations against a real
 * orchestrator on 127.0.0.1, as an outsider (open registration) or a join-token holder would
 * send them; each must leave the registry within its bounds, and the legitimate workers served.
 * The counts are the smallest that show each bug, not the issue's figures; the bounds asserted
 * are what the issue measured (20,000 entries kept, 94 → 437 MB, three addresses tripling a limit).
 */
import { request } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { LIMITS } from '@mpd/contract';
import { InMemoryNodeRegistry, type InMemoryNodeRegistryOptions } from '@mpd/orchestrator';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, HEARTBEAT_TIMEOUT_MS, JOIN_TOKEN as JOIN, ADMIN_TOKEN as ADMIN } from '../helpers/cluster.js';

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

/** An orchestrator with a join and an admin token, its registry on the cluster's clock with these bounds. */
async function orchestrator(
  bounds: Omit<InMemoryNodeRegistryOptions, 'heartbeatTimeoutMs' | 'now'> = {},
  rateLimits: { registerPerMinute?: number } = {},
) {
  cluster = new Cluster();
  const registry = new InMemoryNodeRegistry({
    heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS,
    now: cluster.clock.now,
    ...bounds,
  });
  const running = await cluster.startOrchestrator({ joinToken: JOIN, adminToken: ADMIN, registry, rateLimits });
  const { port } = running;
  /** POST from `localAddress` (127.0.0.1, 127.0.0.2, …): the status, Retry-After and body. */
  const post = (path: string, body: unknown, token: string, localAddress = '127.0.0.1') =>
    new Promise<{ status: number; retryAfter: string | undefined; json: Record<string, unknown> }>(
      (resolve, reject) => {
        const outgoing = request(
          {
            host: '127.0.0.1',
            port,
            path,
            method: 'POST',
            localAddress,
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          },
          (response) => {
            let text = '';
            response.setEncoding('utf8');
            response.on('data', (chunk: string) => (text += chunk));
            response.on('end', () =>
              resolve({
                status: response.statusCode!,
                retryAfter: response.headers['retry-after'],
                json: JSON.parse(text) as Record<string, unknown>,
              }),
            );
          },
        );
        outgoing.on('error', reject);
        outgoing.end(JSON.stringify(body));
      },
    );
  /** Registers `id` with the join token; `pipeline` advertised, `credential` presented. */
  const register = (
    id: string,
    { pipeline, credential }: { pipeline?: unknown; credential?: unknown } = {},
    localAddress?: string,
  ) =>
    post(
      '/api/workers/register',
      {
        workerNode: {
          id,
          endpoint: 'http://127.0.0.1:9',
          capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
          ...(pipeline ? { pipeline } : {}),
        },
        ...(credential ? { credential } : {}),
      },
      JOIN,
      localAddress,
    );
  /** Sends `count` registrations, `parallel` at a time; their answers in order. */
  const flood = async (count: number, make: (index: number) => ReturnType<typeof register>, parallel = 20) => {
    const answers: Awaited<ReturnType<typeof register>>[] = [];
    for (let start = 0; start < count; start += parallel) {
      const batch = Array.from({ length: Math.min(parallel, count - start) }, (_, offset) => make(start + offset));
      answers.push(...(await Promise.all(batch)));
    }
    return answers;
  };
  return { running, registry, register, post, flood };
}

/** Statuses and how many times each came. */
const tally = (answers: { status: number }[]) =>
  answers.reduce<Record<number, number>>(
    (counts, { status }) => ({ ...counts, [status]: (counts[status] ?? 0) + 1 }),
    {},
  );

describe('attacks on the registry (issue 11, case 3)', () => {
  it('worker restarts with random ids: Offline entries are removed after --offline-retention (20,000 stayed listed for good)', async () => {
    const retentionMs = 60_000;
    const { registry, register, flood, post } = await orchestrator({ offlineRetentionMs: retentionMs });
    const live = await register('live');
    const answers = await flood(500, (index) => register(`restart-${index}-${Math.random().toString(36).slice(2)}`));
    expect(tally(answers)).toEqual({ 200: 500 });
    expect(registry.snapshot().length).toBe(501);
    // Past the heartbeat timeout and the retention; the live worker's heartbeat, in the same tick
    // (as its next one would: no sweep may catch it in between), keeps it.
    cluster!.clock.advance(HEARTBEAT_TIMEOUT_MS + retentionMs + 1);
    registry.heartbeat('live', 0);
    await expect.poll(() => registry.snapshot().length, { timeout: 5_000 }).toBe(1);
    expect(registry.snapshot()[0]!.id).toBe('live');
    const heartbeat = (workerId: string, credential: unknown) =>
      post('/api/workers/heartbeat', { workerId, currentLoad: 0 }, String(credential));
    expect((await heartbeat('live', live.json.credential)).status).toBe(200);
    // A removed worker that comes back is told to register again: its credential went with it.
    expect((await heartbeat(answers[0]!.json.workerId as string, answers[0]!.json.credential)).status).toBe(401);
  });

  it('a flood of new ids past --max-workers gets 503 TooManyWorkers with Retry-After; the registry stays at the bound; a known worker re-registers', async () => {
    const { registry, register, flood } = await orchestrator({ maxWorkers: 100 });
    const known = await register('known');
    const answers = await flood(200, (index) => register(`flood-${index}`));
    expect(tally(answers)).toEqual({ 200: 99, 503: 101 });
    const refused = answers.find((answer) => answer.status === 503)!;
    expect(refused.json).toMatchObject({ code: 'TooManyWorkers' });
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(registry.snapshot().length).toBe(100);
    // A known id registers again, however full the registry (with its credential: it is live).
    expect((await register('known', { credential: known.json.credential })).status).toBe(200);
    expect((await register('flood-0', { credential: answers[0]!.json.credential })).status).toBe(200);
  });

  it('distinct pipelines of the largest size: a flood pins at most --max-pipelines copies (150 took RSS from 94 to 437 MB)', async () => {
    const gc = exposedGc();
    const maxPipelines = 8;
    const { registry, register, flood } = await orchestrator({ maxPipelines });
    // As many 100-character names as LIMITS.pipeline allows: the largest pipeline a worker may advertise.
    const count = LIMITS.pipeline.maxNameCharacters / 100;
    const pipelineOf = (index: number) => ({
      name: `p${index}`,
      fingerprint: `sha256:${index}`,
      modules: Array.from({ length: count }, (_, name) => `${index}-${name}-`.padEnd(100, 'x')),
    });
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const rssBefore = process.memoryUsage().rss;
    const answers = await flood(100, (index) => register(`p-${index}`, { pipeline: pipelineOf(index) }), 10);
    expect(tally(answers)).toEqual({ 200: maxPipelines, 503: 100 - maxPipelines });
    expect(answers.find((answer) => answer.status === 503)!.json).toMatchObject({ code: 'TooManyPipelines' });
    expect(new Set(registry.snapshot().map((node) => node.pipeline?.fingerprint)).size).toBe(maxPipelines);
    gc();
    // 8 pipelines of 0.4 MB each are held; without the bound, all 100 were (about 40 MB).
    const heldMb = (process.memoryUsage().heapUsed - heapBefore) / 1e6;
    expect(heldMb).toBeLessThan(20);
    expect((process.memoryUsage().rss - rssBefore) / 1e6).toBeLessThan(150);
    // The issue's pipeline (1 MB of names, 2.3 MB once held) is refused before it is held.
    const huge = {
      ...pipelineOf(999),
      modules: Array.from({ length: 9_500 }, (_, name) => `${name}-`.padEnd(100, 'x')),
    };
    const refused = await register('huge', { pipeline: huge });
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ issues: [{ field: 'body.workerNode.pipeline.modules' }] });
  });

  it('a join-token holder calling from 127.0.0.1, 127.0.0.2 and 127.0.0.3 gets one registration budget, not three', async () => {
    const perMinute = 30;
    const { flood, register } = await orchestrator({}, { registerPerMinute: perMinute });
    const addresses = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
    const answers = await flood(3 * perMinute, (index) => register(`spread-${index}`, {}, addresses[index % 3]), 3);
    expect(tally(answers)).toEqual({ 200: perMinute, 429: 2 * perMinute });
    expect(answers.at(-1)!.retryAfter).toBeDefined();
  });
});

/**
 * `gc()`, to measure what the heap holds rather than what is not collected yet (the orchestrator
 * runs in this process). Node exposes it once `--expose-gc` is set, in a new context.
 */
function exposedGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
