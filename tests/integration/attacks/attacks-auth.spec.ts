/**
 * Issue 11, cases 1 and 2, against real servers on 127.0.0.1: work done before authentication
 * (huge bodies without a token), and a failed-authentication lockout that locked out the
 * innocent. Sizes are asserted as bounds far below what the bug sent; "before any work" as an
 * answer that comes while most of the request's body is still unsent (never a time bound: the
 * tests must pass on a loaded machine).
 */
import { connect, type Socket } from 'node:net';
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
}

/** A POST with a raw body and an optional bearer token; the answer with its size. */
async function post(url: string, body: string, token?: string): Promise<Answer> {
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
  };
}

/** An answer read off a connection whose request body was sent only in part. */
interface UnsentAnswer {
  status: number;
  /** Lowercased header names. */
  headers: Map<string, string>;
  body: string;
  /** The connection, still open, the rest of its body never sent: destroy it when done. */
  socket: Socket;
}

/**
 * Sends a POST's head declaring all of `body` (its Content-Length) but only the first `sentBytes`
 * of the body, and resolves with the answer read while the rest is still unsent: a server that
 * answers then cannot have read, let alone parsed, the body (issue 11's "unparsed", shown by the
 * bytes on the wire rather than by a time bound). Rejects when the server closes the connection
 * before a whole answer, or sends none within `waitMs` (a server waiting for the rest of the
 * body never answers: the bug).
 */
function answerWithBodyUnsent(
  url: string,
  path: string,
  body: string,
  { token, sentBytes = 64 * 1024, waitMs = 20_000 }: { token?: string; sentBytes?: number; waitMs?: number },
): Promise<UnsentAnswer> {
  const { port } = new URL(url);
  return new Promise<UnsentAnswer>((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(
          `no answer within ${waitMs} ms while ${Buffer.byteLength(body) - sentBytes} bytes of the body were unsent`,
        ),
      );
    }, waitMs);
    let received = Buffer.alloc(0);
    const fail = (error: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error(`closed before a whole answer: ${received.toString('latin1')}`)));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) return;
      const [statusLine, ...lines] = received.subarray(0, end).toString('latin1').split('\r\n');
      const headers = new Map(
        lines.map((line) => [
          line.slice(0, line.indexOf(':')).trim().toLowerCase(),
          line.slice(line.indexOf(':') + 1).trim(),
        ]),
      );
      const length = Number(headers.get('content-length'));
      if (received.length - end - 4 < length) return;
      clearTimeout(timer);
      socket.removeAllListeners('close');
      socket.removeAllListeners('data');
      socket.on('error', () => undefined); // the server may close it once its answer is out
      resolve({
        status: Number(statusLine!.split(' ')[1]),
        headers,
        body: received.subarray(end + 4, end + 4 + length).toString('utf8'),
        socket,
      });
    });
    const head = [
      `POST ${path} HTTP/1.1`,
      'Host: 127.0.0.1',
      'Content-Type: application/json',
      `Content-Length: ${Buffer.byteLength(body)}`,
      ...(token ? [`Authorization: Bearer ${token}`] : []),
    ];
    socket.write(`${head.join('\r\n')}\r\n\r\n`);
    socket.write(body.slice(0, sentBytes));
  });
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
  it('worker: an unauthenticated 12 MB execute (1 M numbers) gets a small 401, unparsed: answered before its body was sent', async () => {
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
      // Unparsed: the same 401 comes while all but the first 64 KiB of the body are still unsent
      // (the bug read and parsed the whole body first: it never answers such a request). A server
      // answers a refused head at once; 10 s, not the default 20 s, so that under that bug the
      // test fails with this wait's message, not at its 60 s timeout: the worker's start and the
      // credential poll (at most 10 s), then one 12 MB post, then this wait, on the first token.
      const unsent = await answerWithBodyUnsent(worker.url, '/api/execution/execute', body, {
        token,
        waitMs: 10_000,
      });
      unsent.socket.destroy();
      expect(unsent.status).toBe(401);
      expect(unsent.headers.get('www-authenticate')).toBe('Bearer realm="mpd"');
      expect(errorBodySchema.parse(JSON.parse(unsent.body))).toMatchObject({ code: 'Unauthorized' });
      expect(Buffer.byteLength(unsent.body)).toBeLessThan(1_024);
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
    expect(beat.status).toBe(200);
    for (const answer of answers) {
      expect(answer.status).toBe(401);
      // The bug: 14 MB answers.
      expect(answer.bytes).toBeLessThan(1_024);
    }
    // The bug: heartbeat handling frozen for 9 s while the bodies were parsed. Not a time bound:
    // six registrations are each refused while all but 64 KiB of their bodies are unsent (so
    // none is parsed), and a heartbeat is answered while all six are still open, unsent.
    const held = await Promise.all(
      Array.from({ length: 6 }, () => answerWithBodyUnsent(orchestrator.url, '/api/workers/register', flood, {})),
    );
    try {
      for (const answer of held) {
        expect(answer.status).toBe(401);
        expect(Buffer.byteLength(answer.body)).toBeLessThan(1_024);
      }
      expect((await post(`${orchestrator.url}/api/workers/heartbeat`, heartbeat, credential)).status).toBe(200);
    } finally {
      for (const answer of held) answer.socket.destroy();
    }
  });

  it('orchestrator without a join token: the same registrations are validated (up to the bound of each list) and each answer is capped at 16 KiB; a heartbeat is not held up', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator();
    const registered = await post(`${orchestrator.url}/api/workers/register`, registerBody('legit'));
    const credential = String(registered.json.credential);
    const flood = registrationWithTags('attacker', 100_000);
    const attacks = Array.from({ length: 6 }, () => post(`${orchestrator.url}/api/workers/register`, flood));
    const beat = await post(
      `${orchestrator.url}/api/workers/heartbeat`,
      JSON.stringify({ workerId: 'legit', currentLoad: 0 }),
      credential,
    );
    const answers = await Promise.all(attacks);
    // Open routes validate what they get, but each list only up to its bound (257 of the 100,000
    // tags): the bug validated every entry, about 0.2 s per body, and 9 s under load, holding up
    // the heartbeat. Not a time bound: the work is counted, each empty tag validated being one
    // issue, so the issues found (shown and omitted) are at most those of the list's first 257
    // entries and its bound's; every entry validated would have found 100,001.
    expect(beat.status).toBe(200);
    for (const answer of answers) {
      expect(answer.status).toBe(400);
      const error = errorBodySchema.parse(answer.json);
      expect(error.issues).toHaveLength(LIMITS.errorAnswer.maxIssues);
      expect(error.omittedIssues).toBeGreaterThan(200); // the bound's issue, and the empty tags up to it
      // The entries up to one past the bound (257), and the bound's issue: 258.
      expect(error.issues!.length + error.omittedIssues!).toBeLessThanOrEqual(LIMITS.capabilities.maxListItems + 2);
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
