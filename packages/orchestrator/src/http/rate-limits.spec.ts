import { request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorBodySchema } from '@mpd/contract';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../app.js';
import type { OrchestratorOptions } from '../orchestrator-options.js';
import { InMemoryNodeRegistry } from '../registry/in-memory-node-registry.js';

const JOIN = 'join-token-0123456789abcdef';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
});

/** A real orchestrator app on 127.0.0.1; `post` sends a JSON body with an optional bearer token. */
async function serve(options: OrchestratorOptions = {}) {
  const app = createApp({ registry: new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 }), options });
  const server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  servers.push(server);
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const post = async (path: string, body: string | object, token?: string) => {
    const response = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return {
      status: response.status,
      json: (await response.json()) as Record<string, unknown>,
      headers: response.headers,
    };
  };
  const get = async (path: string, token?: string) => {
    const response = await fetch(`${url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: response.status, headers: response.headers };
  };
  const register = async (id: string, token?: string): Promise<string> => {
    const answer = await post(
      '/api/workers/register',
      {
        workerNode: {
          id,
          endpoint: `http://127.0.0.1:9`,
          capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
        },
      },
      token,
    );
    expect(answer.status).toBe(200);
    return String(answer.json.credential);
  };
  const heartbeat = (workerId: string, token?: string) =>
    post('/api/workers/heartbeat', { workerId, currentLoad: 0 }, token);
  /** POSTs from another loopback address (127.0.0.2, …): the status and the error message. */
  const postFrom = (localAddress: string, path: string, body: object, token?: string) =>
    new Promise<{ status: number; errorMessage: unknown }>((resolve, reject) => {
      const outgoing = request(
        `${url}${path}`,
        {
          method: 'POST',
          localAddress,
          headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (text += chunk));
          response.on('end', () =>
            resolve({ status: response.statusCode!, errorMessage: JSON.parse(text).errorMessage }),
          );
        },
      );
      outgoing.on('error', reject);
      outgoing.end(JSON.stringify(body));
    });
  return { post, get, register, heartbeat, postFrom };
}

/** The three loopback addresses of issue 11's bypass. */
const ADDRESSES = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];

const registrationOf = (id: string) => ({
  workerNode: {
    id,
    endpoint: `http://127.0.0.1:9`,
    capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
  },
});

describe('registration rate limiter', () => {
  // Issue 11: the limit was per address only, so three loopback addresses tripled a join token holder's budget.
  it('with a join token: counts registrations per token, wherever they come from (three addresses do not triple it)', async () => {
    const { postFrom } = await serve({ joinToken: JOIN, rateLimits: { registerPerMinute: 3 } });
    const answers = [];
    for (let i = 0; i < 6; i++) {
      answers.push(await postFrom(ADDRESSES[i % 3]!, '/api/workers/register', registrationOf(`w${i}`), JOIN));
    }
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 429, 429, 429]);
    expect(answers[3]?.errorMessage).toContain('registrations with the join token');
  });

  it('without a join token (open registration): counts registrations per client address', async () => {
    const { postFrom } = await serve({ rateLimits: { registerPerMinute: 1 } });
    const statuses = [];
    for (const address of [...ADDRESSES, '127.0.0.1']) {
      statuses.push((await postFrom(address, '/api/workers/register', registrationOf(`from-${address}`))).status);
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
  });
});

describe('heartbeat rate limiter', () => {
  // Found by the HTTP fuzz test (tests/integration/fuzz/): the limiter keyed on String(body.workerId), which
  // throws for an object whose toString is not a function, so the request answered 500.
  it('answers 400 ValidationFailed, not 500, for a workerId object without a callable toString', async () => {
    const { post } = await serve();
    for (const workerId of ['{"toString":""}', '{"toString":1,"valueOf":1}', '{"toString":{}}']) {
      const response = await post('/api/workers/heartbeat', `{"workerId":${workerId},"currentLoad":0}`);
      expect(response.status).toBe(400);
      expect(errorBodySchema.parse(response.json)).toMatchObject({ code: 'ValidationFailed' });
    }
  });

  // The limiter used to count every heartbeat, before authentication, by the body's workerId:
  // heartbeats forged for a worker's id used up that worker's limit, its own heartbeats got 429,
  // and the orchestrator soon counted it Offline.
  it("without a join token: heartbeats forged for a worker's id do not use up its limit", async () => {
    const { register, heartbeat } = await serve({ rateLimits: { heartbeatPerMinute: 3 } });
    const credential = await register('victim');
    const forged = [];
    for (let i = 0; i < 10; i++) forged.push((await heartbeat('victim')).status);
    // Open mode: heartbeats without a credential are accepted, and limited per address.
    expect(forged).toEqual([200, 200, 200, 429, 429, 429, 429, 429, 429, 429]);
    for (let i = 0; i < 3; i++) expect((await heartbeat('victim', credential)).status).toBe(200);
    // The worker's own limit still holds.
    const flooded = await heartbeat('victim', credential);
    expect(flooded.status).toBe(429);
    expect(flooded.json).toMatchObject({ code: 'RateLimited', errorMessage: expect.stringContaining('this worker') });
  });

  it("with a join token: forged heartbeats (no token, a wrong one, another worker's credential) do not use up the victim's limit", async () => {
    const { register, heartbeat } = await serve({ joinToken: JOIN, rateLimits: { heartbeatPerMinute: 3 } });
    const victim = await register('victim', JOIN);
    const attacker = await register('attacker', JOIN);
    const forged: number[] = [];
    for (const token of [undefined, 'mpdw_not-a-credential-0123456789', attacker]) {
      for (let i = 0; i < 5; i++) forged.push((await heartbeat('victim', token)).status);
    }
    expect(forged.filter((status) => status === 200)).toEqual([]);
    expect(forged).toContain(429);
    for (let i = 0; i < 3; i++) expect((await heartbeat('victim', victim)).status).toBe(200);
    expect((await heartbeat('victim', victim)).status).toBe(429);
  });

  it("counts a worker's heartbeats per credential, wherever they come from (three addresses do not triple it)", async () => {
    const { register, postFrom } = await serve({ joinToken: JOIN, rateLimits: { heartbeatPerMinute: 3 } });
    const credential = await register('w', JOIN);
    const statuses = [];
    for (let i = 0; i < 6; i++) {
      statuses.push(
        (await postFrom(ADDRESSES[i % 3]!, '/api/workers/heartbeat', { workerId: 'w', currentLoad: 0 }, credential))
          .status,
      );
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429, 429]);
  });

  it('counts heartbeats without a worker credential per client address', async () => {
    const { heartbeat } = await serve({ rateLimits: { heartbeatPerMinute: 2 } });
    expect((await heartbeat('a')).status).toBe(404);
    expect((await heartbeat('b')).status).toBe(404);
    const limited = await heartbeat('c');
    expect(limited.status).toBe(429);
    expect(limited.json).toMatchObject({
      code: 'RateLimited',
      errorMessage: expect.stringContaining('without a valid token from this address'),
    });
  });

  it('answers with the IETF draft-7 RateLimit headers, and Retry-After on a 429', async () => {
    const { register, heartbeat } = await serve({ rateLimits: { heartbeatPerMinute: 2 } });
    const credential = await register('w');
    const first = await heartbeat('w', credential);
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit-policy')).toBe('2;w=60');
    expect(first.headers.get('etag')).toBeNull(); // live state: nothing to cache or revalidate
    expect(first.headers.get('ratelimit')).toMatch(/^limit=2, remaining=1, reset=(60|59)$/);
    expect((await heartbeat('w', credential)).headers.get('ratelimit')).toMatch(/^limit=2, remaining=0, reset=/);
    const limited = await heartbeat('w', credential);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(59);
  });
});

describe('failed-authentication lockout and failed-request budget', () => {
  const ADMIN = 'admin-token-0123456789abcdef';
  const WRONG = 'wrong-token-0123456789';

  it('locks out the failing token from that address only: other tokens, no token and valid ones still get through', async () => {
    const { get } = await serve({ joinToken: JOIN, adminToken: ADMIN, rateLimits: { authFailuresPerMinute: 3 } });
    // Successful calls do not count, however many.
    for (let i = 0; i < 5; i++) expect((await get('/api/workers', ADMIN)).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await get('/api/workers', WRONG)).status).toBe(401);
    const locked = await get('/api/workers', WRONG);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThanOrEqual(59);
    expect(locked.headers.get('ratelimit')).toMatch(/^limit=3, remaining=0, reset=/);
    // Another wrong token, and no token at all, are keys of their own.
    expect((await get('/api/workers', 'another-wrong-token-0123')).status).toBe(401);
    expect((await get('/api/workers')).status).toBe(401);
    // A valid token is never refused by the lockout, from the same address.
    expect((await get('/api/workers', ADMIN)).status).toBe(200);
    expect((await get('/api/health')).status).toBe(200);
  });

  it('counts 403 answers against the token that got them, yet never refuses that valid token', async () => {
    const { get } = await serve({ joinToken: JOIN, adminToken: ADMIN, rateLimits: { authFailuresPerMinute: 2 } });
    for (let i = 0; i < 4; i++) expect((await get('/api/workers', JOIN)).status).toBe(403);
    expect((await get('/api/workers', ADMIN)).status).toBe(200);
  });

  it('counts every failed request (but 429) per address: past the budget, callers without a valid token get 429, workers with their credential do not', async () => {
    const { post, register, heartbeat } = await serve({ rateLimits: { failedRequestsPerMinute: 3 } });
    const credential = await register('w1');
    // Open mode (no tokens): bodies that do not validate, an unknown worker.
    expect((await post('/api/workers/heartbeat', { workerId: 'w1' })).status).toBe(400);
    expect((await post('/api/workers/register', { workerNode: {} })).status).toBe(400);
    expect((await heartbeat('nobody')).status).toBe(404);
    const refused = await heartbeat('w1');
    expect(refused.status).toBe(429);
    expect(refused.json).toMatchObject({
      code: 'RateLimited',
      errorMessage: expect.stringContaining('failed requests'),
    });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(59);
    // The 429s themselves do not count, and a valid credential is never refused.
    for (let i = 0; i < 3; i++) expect((await heartbeat('w1', credential)).status).toBe(200);
  });

  it('stops a guesser who rotates tokens: each token fails once, the address budget refuses the next', async () => {
    const { get } = await serve({
      adminToken: ADMIN,
      rateLimits: { authFailuresPerMinute: 100, failedRequestsPerMinute: 5 },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await get('/api/workers', `guess-${i}-0123456789abcdef`)).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
    expect((await get('/api/workers', ADMIN)).status).toBe(200);
  });
});
