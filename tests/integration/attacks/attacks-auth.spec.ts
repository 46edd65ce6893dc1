/**
 * Issue 11, cases 1 and 2, against real servers on 127.0.0.1: work done before authentication
 * (huge bodies without a token), and a failed-authentication lockout that locked out the
 * innocent. Each figure of the issue is asserted as a bound, generous enough for a loaded
 * 2-core machine and far below what the bug took.
 */
import { errorBodySchema, LIMITS } from '@mpd/contract';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, JOIN_TOKEN as JOIN, ADMIN_TOKEN as ADMIN } from '../helpers/cluster.js';

const WRONG = 'wrong-token-0123456789abcdef';

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

interface Answer {
  status: number;
  headers: Headers;
  bytes: number;
  json: Record<string, unknown>;
  ms: number;
}

/** A POST with a raw body and an optional bearer token; the answer with its size and how long it took. */
async function post(url: string, body: string, token?: string): Promise<Answer> {
  const started = performance.now();
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body,
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    bytes: Buffer.byteLength(text),
    json: JSON.parse(text) as Record<string, unknown>,
    ms: performance.now() - started,
  };
}

/** A registration whose `tags` hold `count` empty strings (the issue's 300 KB body: 100,000 of them). */
function registrationWithTags(id: string, count: number): string {
  const tags = `[${'"",'.repeat(count - 1)}""]`;
  return `{"workerNode":{"id":"${id}","endpoint":"http://127.0.0.1:9","capabilities":{"os":"linux","installedTools":[],"maxParallelModules":1,"tags":${tags}}}}`;
}

/** An execute whose `dependencyResults` holds `count` numbers where JSON texts belong (the issue's 12 MB body: 1 M). */
function executeWithNumbers(count: number): string {
  const entries: string[] = [];
  for (let i = 0; i < count; i++) entries.push(`"k${i}":${i}`);
  return `{"executionId":"attack-1","moduleTypeName":"m","serializedModule":"","dependencyResults":{${entries.join(',')}}}`;
}

const registerBody = (id: string) =>
  JSON.stringify({
    workerNode: {
      id,
      endpoint: 'http://127.0.0.1:9',
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
    },
  });

describe('case 1: authenticate first, cheaply', () => {
  it('worker: an unauthenticated 12 MB execute (1 M numbers) gets a small 401 within a second, unparsed', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN });
    const worker = await cluster.startWorker({ joinToken: JOIN });
    await expect.poll(() => worker.link?.credential, { timeout: 10_000 }).toBeDefined();
    const body = executeWithNumbers(1_000_000);
    expect(body.length).toBeGreaterThan(12_000_000);
    const rssBefore = process.memoryUsage().rss;
    for (const token of [undefined, WRONG, JOIN]) {
      const answer = await post(`${worker.url}/api/execution/execute`, body, token);
      expect(answer.status).toBe(401);
      expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="mpd"');
      expect(errorBodySchema.parse(answer.json)).toMatchObject({ code: 'Unauthorized' });
      // The bug: a 154 MB answer after 15.8 s.
      expect(answer.bytes).toBeLessThan(1_024);
      expect(answer.ms).toBeLessThan(1_000);
    }
    // Nothing of the bodies was kept (the bug: 600 MB of RSS for 1.5 M entries); the test's own
    // 12 MB string and fetch's copies are in this process too, hence the generous bound.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 * 1024 * 1024);
    expect(orchestrator.registry.get(worker.id)?.status).toBe('Available');
  });

  it('orchestrator: six unauthenticated 300 KB registrations get small 401s and do not delay a worker heartbeat', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN });
    const registered = await post(`${orchestrator.url}/api/workers/register`, registerBody('legit'), JOIN);
    const credential = String(registered.json.credential);
    const heartbeat = JSON.stringify({ workerId: 'legit', currentLoad: 0 });
    const flood = registrationWithTags('attacker', 100_000);
    expect(flood.length).toBeGreaterThan(300_000);

    const attacks = Array.from({ length: 6 }, () => post(`${orchestrator.url}/api/workers/register`, flood));
    const beat = await post(`${orchestrator.url}/api/workers/heartbeat`, heartbeat, credential);
    const answers = await Promise.all(attacks);
    // The bug: heartbeat handling frozen for 9 s.
    expect(beat.status).toBe(200);
    expect(beat.ms).toBeLessThan(1_000);
    for (const answer of answers) {
      expect(answer.status).toBe(401);
      // The bug: 14 MB answers.
      expect(answer.bytes).toBeLessThan(1_024);
      expect(answer.ms).toBeLessThan(2_000);
    }
  });

  it('orchestrator without a join token: the same registrations are validated (up to the bound of each list) and each answer is capped at 16 KiB; a heartbeat is not held up', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator();
    const registered = await post(`${orchestrator.url}/api/workers/register`, registerBody('legit'));
    const credential = String(registered.json.credential);
    const flood = registrationWithTags('attacker', 100_000);
    const attacks = Array.from({ length: 6 }, () => post(`${orchestrator.url}/api/workers/register`, flood));
    const beatSentAt = performance.now();
    const beat = await post(
      `${orchestrator.url}/api/workers/heartbeat`,
      JSON.stringify({ workerId: 'legit', currentLoad: 0 }),
      credential,
    );
    const beatMs = performance.now() - beatSentAt;
    const answers = await Promise.all(attacks);
    // Open routes validate what they get, but each list only up to its bound (257 of the 100,000
    // tags): the bug validated every entry, about 0.2 s per body, and 9 s under load.
    expect(beat.status).toBe(200);
    expect(beatMs).toBeLessThan(2_000);
    for (const answer of answers) {
      expect(answer.status).toBe(400);
      const error = errorBodySchema.parse(answer.json);
      expect(error.issues).toHaveLength(LIMITS.errorAnswer.maxIssues);
      expect(error.omittedIssues).toBeGreaterThan(200); // the bound's issue, and the empty tags up to it
      expect(answer.bytes).toBeLessThanOrEqual(LIMITS.errorAnswer.maxBytes);
    }
  });
});

describe('case 2: a lockout that spares valid credentials', () => {
  it('150 wrong-token requests from the workers own address: the token is locked out, the workers are not', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN, adminToken: ADMIN });
    const worker = await cluster.startWorker({ joinToken: JOIN });
    await expect.poll(() => worker.link?.credential, { timeout: 10_000 }).toBeDefined();
    const credential = worker.link!.credential!;
    const heartbeat = JSON.stringify({ workerId: worker.id, currentLoad: 0 });

    const statuses: number[] = [];
    for (let i = 0; i < 150; i++) {
      const path = i % 2 === 0 ? '/api/workers/heartbeat' : '/api/workers/register';
      const body = i % 2 === 0 ? heartbeat : registerBody(`intruder-${i}`);
      const answer = await post(`${orchestrator.url}${path}`, body, WRONG);
      statuses.push(answer.status);
      if (answer.status === 429) expect(answer.headers.get('retry-after')).toMatch(/^\d+$/);
    }
    expect(statuses.slice(0, 100).every((status) => status === 401)).toBe(true);
    expect(statuses.slice(100).every((status) => status === 429)).toBe(true);

    // From the same address (127.0.0.1): the worker's own heartbeats, a registration with the
    // join token and the admin's calls all go through (the bug: 429, and the workers went Offline).
    for (let i = 0; i < 5; i++) {
      const beat = await post(`${orchestrator.url}/api/workers/heartbeat`, heartbeat, credential);
      expect(beat.status).toBe(200);
    }
    expect((await post(`${orchestrator.url}/api/workers/register`, registerBody('newcomer'), JOIN)).status).toBe(200);
    const list = await fetch(`${orchestrator.url}/api/workers`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(list.status).toBe(200);
    expect(orchestrator.registry.get(worker.id)?.status).toBe('Available');
    // The locked-out token stays locked out.
    expect((await post(`${orchestrator.url}/api/workers/heartbeat`, heartbeat, WRONG)).status).toBe(429);
  });
});
