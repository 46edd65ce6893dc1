import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { inspect } from 'node:util';
import { type AddressInfo, createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { ACCEPT_OUTPUT_HEADER, DEFAULT_MAX_RESULT_BYTES, executeAnswerLimit, OUTPUT_NONE } from '@mpd/contract';
import { UnknownStatusError } from '@ts-rest/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { dispatcherOptions } from './fetcher.js';
import {
  ArtifactClient,
  CallAborter,
  createOrchestratorClient,
  createWorkerClient,
  MpdClientError,
  type OrchestratorClient,
  type WorkerClient,
} from './index.js';

// Records the options of every undici Agent the clients create, to check what they really use.
const agentOptions = vi.hoisted(() => [] as unknown[]);
vi.mock('undici', async (importOriginal) => {
  const actual = await importOriginal<typeof import('undici')>();
  class RecordingAgent extends actual.Agent {
    constructor(options?: ConstructorParameters<typeof actual.Agent>[0]) {
      super(options);
      agentOptions.push(options);
    }
  }
  return { ...actual, Agent: RecordingAgent };
});

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

type Handler = (req: Seen, res: ServerResponse) => void;

interface TestServer {
  url: string;
  seen: Seen[];
}

const servers: Server[] = [];
const netServers: NetServer[] = [];
const clients: { close(): Promise<void> }[] = [];
const timers: NodeJS.Timeout[] = [];

afterEach(async () => {
  for (const timer of timers.splice(0)) clearTimeout(timer);
  for (const server of netServers.splice(0)) server.close();
  await Promise.all(clients.splice(0).map((client) => client.close()));
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

/** A real HTTP server on 127.0.0.1 that records each request and answers with `handler`. */
async function serve(handler: Handler): Promise<TestServer> {
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const request = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      seen.push(request);
      handler(request, res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, seen };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function later(ms: number, action: () => void): void {
  timers.push(setTimeout(action, ms));
}

function worker(options: Parameters<typeof createWorkerClient>[0]): WorkerClient {
  const client = createWorkerClient(options);
  clients.push(client);
  return client;
}

function orchestrator(options: Parameters<typeof createOrchestratorClient>[0]): OrchestratorClient {
  const client = createOrchestratorClient(options);
  clients.push(client);
  return client;
}

/** Resolves to what `promise` rejected with; fails when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    const value = await promise;
    throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
  } catch (error) {
    return error;
  }
}

const NOW = '2025-09-30T10:00:00Z';
const workerHealth = { status: 'healthy', currentLoad: 1, maxLoad: 4, timestamp: NOW };
const executeRequest = (timeout: string) => ({
  executionId: 'exec-1',
  serializedModule: '',
  moduleTypeName: 'build',
  dependencyResults: {},
  environmentVariables: {},
  timeout,
});
const executeSuccess = {
  executionId: 'exec-1',
  success: true,
  serializedResult: '{"artifact":"dist/app.tgz"}',
  duration: '00:00:00.6000000',
  startTime: NOW,
  endTime: '2025-09-30T10:00:00.6Z',
  workerId: 'w1',
};

describe('typed calls', () => {
  it('GET resolves to the status and body the server sent', async () => {
    const server = await serve((_req, res) => json(res, 200, workerHealth));
    const response = await worker({ baseUrl: server.url }).health.get();
    expect(response.status).toBe(200);
    expect(response.body).toEqual(workerHealth);
    expect(server.seen).toMatchObject([{ method: 'GET', url: '/api/health' }]);
  });

  it('POST sends the body as JSON and resolves to the answer', async () => {
    const server = await serve((req, res) =>
      json(res, 200, {
        success: true,
        workerId: (JSON.parse(req.body) as { workerNode: { id: string } }).workerNode.id,
        heartbeatIntervalSeconds: 30,
      }),
    );
    const workerNode = {
      id: 'worker-1',
      endpoint: 'http://worker1:9000',
      capabilities: { os: 'linux', installedTools: ['node'], maxParallelModules: 4, tags: ['gpu'] },
    };
    const response = await orchestrator({ baseUrl: server.url }).workers.register({
      body: { workerNode, timestamp: NOW },
    });
    expect(response).toMatchObject({
      status: 200,
      body: { success: true, workerId: 'worker-1', heartbeatIntervalSeconds: 30 },
    });
    expect(server.seen[0]).toMatchObject({ method: 'POST', url: '/api/workers/register' });
    expect(server.seen[0]!.headers['content-type']).toBe('application/json');
    expect(JSON.parse(server.seen[0]!.body)).toEqual({ workerNode, timestamp: NOW });
  });

  it('resolves (does not throw) for an error status of the contract, with its body', async () => {
    const server = await serve((_req, res) =>
      json(res, 404, { success: false, errorMessage: 'Worker w9 is not registered', code: 'WorkerNotFound' }),
    );
    const response = await orchestrator({ baseUrl: server.url }).workers.heartbeat({
      body: { workerId: 'w9', currentLoad: 0 },
    });
    expect(response.status).toBe(404);
    expect(response.body).toEqual({
      success: false,
      errorMessage: 'Worker w9 is not registered',
      code: 'WorkerNotFound',
    });
  });

  it('inserts path parameters', async () => {
    const server = await serve((_req, res) => json(res, 200, { success: true }));
    const response = await orchestrator({ baseUrl: server.url }).workers.unregister({
      params: { workerId: 'worker-7' },
    });
    expect(response.status).toBe(200);
    expect(server.seen).toMatchObject([{ method: 'DELETE', url: '/api/workers/worker-7' }]);
  });

  // The fetcher gives undici an origin and a path parsed once per URL (issue 14, round H): the
  // query, the base URL's path and its percent-encoding are kept, call after call.
  it('sends the query and the base URL path as undici parsing the URL did, on every call to the URL', async () => {
    const server = await serve((_req, res) => json(res, 200, { success: true, workerId: 'w1', status: 'Draining' }));
    const client = orchestrator({ baseUrl: `${server.url}/mpd ci` });
    for (const incarnation of ['i-1', 'i-1', 'i-2']) {
      await client.workers.drain({ params: { workerId: 'w1' }, query: { incarnation } });
    }
    expect(server.seen.map((request) => request.url)).toEqual([
      '/mpd%20ci/api/workers/w1/drain?incarnation=i-1',
      '/mpd%20ci/api/workers/w1/drain?incarnation=i-1',
      '/mpd%20ci/api/workers/w1/drain?incarnation=i-2',
    ]);
  });

  // Issue 11, case 4: ts-rest inserts path parameters as given, so these named other workers.
  it.each([
    ['unregister', 'w1?evil', 'DELETE', '/api/workers/w1%3Fevil'],
    ['drain', 'x/../../workers/w2', 'POST', '/api/workers/x%2F..%2F..%2Fworkers%2Fw2/drain'],
    ['unregister', 'runner#2', 'DELETE', '/api/workers/runner%232'],
    ['unregister', 'a/b', 'DELETE', '/api/workers/a%2Fb'],
  ] as const)('%s of %s percent-encodes the id: the request names that worker only', async (call, id, method, url) => {
    const server = await serve((_req, res) => json(res, 200, { success: true, workerId: id, status: 'Draining' }));
    const client = orchestrator({ baseUrl: server.url });
    const response =
      call === 'drain'
        ? await client.workers.drain({ params: { workerId: id }, query: {} })
        : await client.workers.unregister({ params: { workerId: id }, query: {} });
    expect(response.status).toBe(200);
    expect(server.seen).toEqual([expect.objectContaining({ method, url })]);
  });

  it("refuses an empty path parameter, '.' and '..' before sending anything (they would name another path)", async () => {
    const server = await serve((_req, res) => json(res, 200, { success: true }));
    const client = orchestrator({ baseUrl: server.url });
    for (const workerId of ['', '.', '..']) {
      const error = await rejection(client.workers.unregister({ params: { workerId }, query: {} }));
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(/path parameter workerId must not be empty, '\.' or '\.\.'/);
    }
    expect(server.seen).toEqual([]);
  });

  it('rejects (UnexpectedAnswer) a drain or register answer that names another worker than the call', async () => {
    const server = await serve((req, res) =>
      req.url.endsWith('/drain')
        ? json(res, 200, { success: true, workerId: 'w2', status: 'Draining' })
        : json(res, 200, { success: true, workerId: 'w2', heartbeatIntervalSeconds: 30 }),
    );
    const client = orchestrator({ baseUrl: server.url });
    const drained = await rejection(client.workers.drain({ params: { workerId: 'w1' }, query: {} }));
    expect(drained).toBeInstanceOf(MpdClientError);
    expect(drained).toMatchObject({ code: 'UnexpectedAnswer' });
    expect((drained as Error).message).toMatch(/the answer names "w2", not "w1"/);
    const workerNode = { id: 'w1', endpoint: 'http://w1:9000', capabilities: {} };
    const registered = await rejection(client.workers.register({ body: { workerNode } as never }));
    expect(registered).toMatchObject({ code: 'UnexpectedAnswer' });
  });

  it('validateResponse: true rejects a body that breaks the contract; false passes it through', async () => {
    const broken = { status: 'healthy', currentLoad: -1, timestamp: 'yesterday' }; // no maxLoad, bad load and time
    const server = await serve((_req, res) => json(res, 200, broken));

    const error = await rejection(worker({ baseUrl: server.url, validateResponse: true }).health.get());
    expect(error).not.toBeInstanceOf(MpdClientError);
    expect((error as Error).name).toBe('ZodError');
    const paths = (error as { issues: { path: (string | number)[] }[] }).issues.map((issue) => issue.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['currentLoad', 'maxLoad', 'timestamp']));

    const unchecked = await worker({ baseUrl: server.url }).health.get();
    expect(unchecked.body).toEqual(broken);
  });

  it('validateResponse: true accepts a body that follows the contract', async () => {
    const server = await serve((_req, res) => json(res, 200, workerHealth));
    const response = await worker({ baseUrl: server.url, validateResponse: true }).health.get();
    expect(response).toMatchObject({ status: 200, body: workerHealth });
  });

  it('sends the headers option on every call', async () => {
    const server = await serve((req, res) =>
      req.url === '/api/health'
        ? json(res, 200, { status: 'healthy', availableWorkers: 0, timestamp: NOW })
        : json(res, 200, { acknowledged: true, shouldDrain: false }),
    );
    const client = orchestrator({
      baseUrl: server.url,
      headers: { Authorization: 'Bearer t0ken', 'X-Trace-Id': 'trace-42' },
    });
    await client.health.get();
    await client.workers.heartbeat({ body: { workerId: 'w1', currentLoad: 2 } });
    expect(server.seen.map((req) => req.url)).toEqual(['/api/health', '/api/workers/heartbeat']);
    for (const req of server.seen) {
      expect(req.headers.authorization).toBe('Bearer t0ken');
      expect(req.headers['x-trace-id']).toBe('trace-42');
    }
    expect(server.seen[1]!.headers['content-type']).toBe('application/json');
  });

  it('sends the token option as a bearer token on every call', async () => {
    const server = await serve((_req, res) =>
      json(res, 200, { status: 'healthy', availableWorkers: 0, timestamp: NOW }),
    );
    const client = orchestrator({ baseUrl: server.url, token: 'admin-token-123456' });
    await client.health.get();
    await client.health.get();
    expect(server.seen.map((req) => req.headers.authorization)).toEqual([
      'Bearer admin-token-123456',
      'Bearer admin-token-123456',
    ]);
  });
});

// Issue 14, round G: the worker client's execute goes past ts-rest's client (directRoute); a call
// with `overrideClientOptions` still goes through ts-rest's, so each case compares the two.
describe("execute without ts-rest's client", () => {
  const viaTsRest = { overrideClientOptions: {} };

  it("sends what ts-rest's client sends for the same call: path, method, headers, JSON body; and resolves to the same answer", async () => {
    const server = await serve((_req, res) => {
      res.setHeader('mpd-output', 'none');
      json(res, 200, executeSuccess);
    });
    const client = worker({ baseUrl: `${server.url}/`, token: 'worker-credential', headers: { 'X-Trace-Id': 'a' } });
    const call = {
      body: executeRequest('00:10:00'),
      extraHeaders: { [ACCEPT_OUTPUT_HEADER]: OUTPUT_NONE, 'X-Trace-Id': 'b', 'X-Dropped': 'x' },
      headers: { 'X-Extra': 'c', 'x-dropped': undefined },
      deadlineMs: 5_000,
    };
    const direct = await client.execution.execute(call);
    const tsRest = await client.execution.execute({ ...call, ...viaTsRest });
    const [sentDirect, sentTsRest] = server.seen;
    expect(sentDirect).toEqual(sentTsRest);
    expect(sentDirect).toMatchObject({ method: 'POST', url: '/api/execution/execute' });
    expect(sentDirect!.headers).toMatchObject({
      'content-type': 'application/json',
      authorization: 'Bearer worker-credential',
      [ACCEPT_OUTPUT_HEADER.toLowerCase()]: OUTPUT_NONE,
      'x-trace-id': 'b',
      'x-extra': 'c',
    });
    expect(sentDirect!.headers).not.toHaveProperty('x-dropped');
    expect(JSON.parse(sentDirect!.body)).toEqual(call.body);
    for (const answer of [direct, tsRest]) {
      expect(answer).toMatchObject({ status: 200, body: executeSuccess });
      expect(answer.headers.get('mpd-output')).toBe('none');
    }
  });

  // The pass-through of other inputs copies the input's own keys, as the rest destructuring
  // before round N and ts-rest's own client do: not what its prototype lists.
  it("passes to the fetcher the input's own keys only, as ts-rest's client: an inherited validateResponse is not one", async () => {
    const broken = { notAnExecuteAnswer: true };
    const server = await serve((_req, res) => json(res, 200, broken));
    const client = worker({ baseUrl: server.url }); // validateResponse: false
    const inherited = <T extends object>(own: T): T =>
      Object.assign(Object.create({ validateResponse: true }) as object, own);
    const direct = await client.execution.execute(inherited({ body: executeRequest('00:10:00') }));
    const tsRest = await client.execution.execute(inherited({ body: executeRequest('00:10:00'), ...viaTsRest }));
    for (const answer of [direct, tsRest]) expect(answer).toMatchObject({ status: 200, body: broken });
  });

  // A frozen extraHeaders is merged once (issue 14, round H: the orchestrator's execute calls).
  it('sends the extraHeaders of each call: a frozen object merged once, a changed one as it is now', async () => {
    const server = await serve((_req, res) => json(res, 200, executeSuccess));
    const client = worker({ baseUrl: server.url, token: 'worker-credential' });
    const frozen = Object.freeze({ 'X-Accept': 'a' });
    const changing: Record<string, string> = { 'X-Accept': 'b' };
    await client.execution.execute({ body: executeRequest('00:10:00'), extraHeaders: frozen });
    await client.execution.execute({ body: executeRequest('00:10:00'), extraHeaders: frozen });
    await client.execution.execute({ body: executeRequest('00:10:00'), extraHeaders: changing });
    changing['X-Accept'] = 'c';
    await client.execution.execute({ body: executeRequest('00:10:00'), extraHeaders: changing });
    const withHeaders = { body: executeRequest('00:10:00'), extraHeaders: frozen, headers: { 'x-more': 'm' } };
    await client.execution.execute(withHeaders);
    expect(server.seen.map((request) => [request.headers['x-accept'], request.headers['x-more']])).toEqual([
      ['a', undefined],
      ['a', undefined],
      ['b', undefined],
      ['c', undefined],
      ['a', 'm'],
    ]);
    for (const request of server.seen) {
      expect(request.headers).toMatchObject({
        'content-type': 'application/json',
        authorization: 'Bearer worker-credential',
      });
    }
  });

  // The answer's Headers are filled only when used for more than get and has (issue 14, round H).
  it("answers Headers that behave as Headers filled from the answer's headers, whatever is called first", async () => {
    const server = await serve((_req, res) => {
      res.setHeader('Mpd-Output', 'none');
      res.setHeader('X-Multi', ['a', 'b']);
      res.setHeader('Set-Cookie', ['c=1', 'd=2']);
      json(res, 200, executeSuccess);
    });
    const client = worker({ baseUrl: server.url });
    const answer = () => client.execution.execute({ body: executeRequest('00:10:00') }).then((a) => a.headers);
    const expected = (headers: Headers) => {
      expect(headers).toBeInstanceOf(Headers);
      expect(headers.get('MPD-OUTPUT')).toBe('none');
      expect(headers.get('x-multi')).toBe('a, b');
      expect(headers.get('x-absent')).toBeNull();
      expect(headers.has('Content-Type')).toBe(true);
      expect(headers.has('x-absent')).toBe(false);
      // Names of an object's prototype are headers the answer lacks too.
      for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
        expect(headers.get(name), name).toBeNull();
        expect(headers.has(name), name).toBe(false);
      }
      expect(() => headers.get('not a name')).toThrow(TypeError);
      expect(headers.getSetCookie()).toEqual(['c=1', 'd=2']);
      expect(Object.fromEntries(headers)).toMatchObject({ 'mpd-output': 'none', 'x-multi': 'a, b' });
      expect([...headers.keys()]).toContain('content-type');
      expect(inspect(headers)).toMatch(/^Headers \{[^]*'mpd-output': 'none'/);
    };
    expected(await answer());
    const iteratedFirst = await answer();
    expect([...iteratedFirst].length).toBeGreaterThan(4);
    expected(iteratedFirst);
    const changed = await answer();
    changed.set('x-multi', 'c');
    changed.append('x-new', 'n');
    changed.delete('mpd-output');
    expect(changed.get('x-multi')).toBe('c');
    expect(changed.get('x-new')).toBe('n');
    expect(changed.get('mpd-output')).toBeNull();
    expect(changed.has('mpd-output')).toBe(false);
    expect(changed.get('content-type')).toMatch(/^application\/json/);
  });

  it("rejects a status the contract does not list with ts-rest's UnknownStatusError, and resolves a listed one", async () => {
    let status = 418;
    const server = await serve((_req, res) => json(res, status, { success: false, errorMessage: 'teapot' }));
    const client = worker({ baseUrl: server.url });
    const direct = await rejection(client.execution.execute({ body: executeRequest('00:10:00') }));
    const tsRest = await rejection(client.execution.execute({ body: executeRequest('00:10:00'), ...viaTsRest }));
    expect(direct).toBeInstanceOf(UnknownStatusError);
    expect((direct as Error).message).toBe((tsRest as Error).message);
    expect((direct as Error).message).toMatch(/Expected one of: .*409.* got: 418$/);
    expect(direct).toMatchObject({ response: { status: 418, body: { errorMessage: 'teapot' } } });
    status = 409;
    const listed = await client.execution.execute({ body: executeRequest('00:10:00') });
    expect(listed).toMatchObject({ status: 409, body: { errorMessage: 'teapot' } });
  });

  it("sends nothing for a call whose aborter aborted before it was made ('Aborted')", async () => {
    const server = await serve((_req, res) => json(res, 200, executeSuccess));
    const client = worker({ baseUrl: server.url });
    const aborter = new CallAborter();
    aborter.abort();
    for (const extra of [{}, viaTsRest]) {
      const error = await rejection(client.execution.execute({ body: executeRequest('00:10:00'), aborter, ...extra }));
      expect(error).toMatchObject({ name: 'MpdClientError', code: 'Aborted' });
    }
    expect(server.seen).toEqual([]);
  });

  it("sends nothing for a call whose caller's signal aborted before it was made ('Aborted')", async () => {
    const server = await serve((_req, res) => json(res, 200, executeSuccess));
    const client = worker({ baseUrl: server.url });
    const signal = AbortSignal.abort();
    for (const extra of [{}, viaTsRest]) {
      const error = await rejection(
        client.execution.execute({ body: executeRequest('00:10:00'), fetchOptions: { signal }, ...extra }),
      );
      expect(error).toMatchObject({ name: 'MpdClientError', code: 'Aborted' });
    }
    expect(server.seen).toEqual([]);
  });
});

describe('baseUrl', () => {
  it.each(['ftp://x', '127.0.0.1:8080', '', 'file:///tmp/socket', 'http://127.0.0.1:notaport'])(
    'throws TypeError for %j',
    (baseUrl) => {
      expect(() => createWorkerClient({ baseUrl })).toThrow(TypeError);
      expect(() => createOrchestratorClient({ baseUrl })).toThrow(/baseUrl must be an http:\/\/ or https:\/\/ URL/);
    },
  );

  // Review of round L: the refused baseUrl was echoed whole, password and query included.
  it('names a refused baseUrl without its user name, password or query', () => {
    for (const [baseUrl, shown] of [
      ['ftp://u:pw@h/x?token=t', '"ftp://***@h/x?…"'],
      ['u:pw@h', '"***@h"'],
      // A password holding `/` or `#` (round N: the client's own rule ended the userinfo there and echoed it).
      ['ftp://u:p/w@h', '"ftp://***@h"'],
      ['ftp://u:p#w@h/x#frag', '"ftp://***@h/x#…"'],
    ]) {
      for (const create of [
        createWorkerClient,
        createOrchestratorClient,
        (options: { baseUrl: string }) => new ArtifactClient({ ...options, token: 'unused-credential' }),
      ]) {
        expect(() => create({ baseUrl: baseUrl! })).toThrow(
          new TypeError(`baseUrl must be an http:// or https:// URL, got ${shown}`),
        );
      }
    }
  });

  // Review of round N: a baseUrl no URL parser takes passed the scheme check; undici's
  // `TypeError: Invalid URL` (the MpdClientError's cause, or ArtifactClient's own throw) kept the
  // raw URL, password included, as its `input`. (Until then a call to such a URL failed as undici
  // failed it, `ERR_INVALID_URL`, its message redacted but not its cause.)
  it.each(['http://user:p#ss-word@127.0.0.1:9', 'http://user:p/ss-word@127.0.0.1:9', 'https://user:ss-word@[::1'])(
    'refuses %j, which no URL parser takes, at once with the redacted message and no cause',
    async (baseUrl) => {
      for (const call of [
        () => createWorkerClient({ baseUrl }).health.get(),
        () => createOrchestratorClient({ baseUrl }).health.get(),
        () => new ArtifactClient({ baseUrl, token: 'unused-credential' }).has('0'.repeat(64)),
      ]) {
        const error = await rejection((async () => call())());
        expect(inspect(error)).not.toContain('ss-word');
        expect(error).toBeInstanceOf(TypeError);
        expect((error as Error).message).toMatch(
          /^baseUrl must be an http:\/\/ or https:\/\/ URL, got "https?:\/\/\*\*\*@/,
        );
        expect((error as Error).cause).toBeUndefined();
      }
    },
  );

  it('works with trailing slashes', async () => {
    const server = await serve((_req, res) => json(res, 200, workerHealth));
    const response = await worker({ baseUrl: `${server.url}/` }).health.get();
    expect(response.status).toBe(200);
    await worker({ baseUrl: `${server.url}//` }).health.get();
    expect(server.seen.map((req) => req.url)).toEqual(['/api/health', '/api/health']);
  });
});

/** Both ways a call takes its options: directly, and through ts-rest's own client options. */
const CALL_WAYS = [{}, { overrideClientOptions: {} }] as const;

/**
 * A worker server that never answers (only an abort ends a call to it) and a client of it:
 * `execute` sends an execute call with `aborter` and the options `extra` and gives its rejection
 * to come; `executeArrived` does so and resolves once the server has the request.
 */
async function unansweringWorker() {
  let arrived: () => void = () => undefined;
  const server = await serve(() => arrived());
  const client = worker({ baseUrl: server.url });
  const execute = (aborter: CallAborter, extra: (typeof CALL_WAYS)[number]) =>
    rejection(client.execution.execute({ body: executeRequest('00:10:00'), aborter, ...extra }));
  const executeArrived = async (aborter: CallAborter, extra: (typeof CALL_WAYS)[number]) => {
    const seen = new Promise<void>((resolve) => (arrived = resolve));
    const call = execute(aborter, extra);
    await seen;
    return { call };
  };
  return { server, execute, executeArrived };
}

describe('transport failures', () => {
  it("rejects with 'Unreachable' when nothing listens", async () => {
    // Take a free port, then free it again.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const error = await rejection(worker({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 2_000 }).health.get());
    expect(error).toBeInstanceOf(MpdClientError);
    expect(error).toMatchObject({ name: 'MpdClientError', code: 'Unreachable', errno: 'ECONNREFUSED' });
    expect((error as Error).message).toBe('GET http://127.0.0.1:' + port + '/api/health: ECONNREFUSED');
  });

  it("names the call without its query: a drain's incarnation is in no error message (README, Security)", async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const incarnation = 'ec05c09c-1111-4222-8333-444455556666';

    const client = orchestrator({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 2_000 });
    const refused = await rejection(client.workers.drain({ params: { workerId: 'w1' }, query: { incarnation } }));
    const aborted = await rejection(
      client.workers.unregister({
        params: { workerId: 'w1' },
        query: { incarnation },
        fetchOptions: { signal: AbortSignal.abort() },
      }),
    );
    expect((refused as Error).message).toBe(`POST http://127.0.0.1:${port}/api/workers/w1/drain?…: ECONNREFUSED`);
    expect((aborted as Error).message).toBe(`DELETE http://127.0.0.1:${port}/api/workers/w1?…: aborted by the caller`);
    expect(inspect(refused) + inspect(aborted)).not.toContain(incarnation);
  });

  // Round N: the client's errors named a call by a rule of their own, which ended the userinfo at
  // the first `/`, `?` or `#` and so echoed a password holding one; now `@mpd/contract`'s `redactUrl`.
  // What happens to a call whose connection was made: the server may have acted on the request.
  it.each([
    ['reset (RST) after the request arrived', 'ECONNRESET', (socket: Socket) => socket.resetAndDestroy()],
    ['closed (FIN) after the request arrived', 'UND_ERR_SOCKET', (socket: Socket) => socket.end()],
    [
      'closed in the middle of the answer',
      'UND_ERR_SOCKET',
      (socket: Socket) => {
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"status":');
        later(50, () => socket.destroy());
      },
    ],
  ])("rejects with 'ConnectionLost' when the connection is %s", async (_what, errno, hangUp) => {
    const server = createNetServer((socket) => socket.once('data', () => later(50, () => hangUp(socket))));
    netServers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const error = await rejection(
      worker({ baseUrl: `http://127.0.0.1:${port}` }).execution.execute({ body: executeRequest('00:01:00') }),
    );
    expect(error).toBeInstanceOf(MpdClientError);
    expect(error).toMatchObject({ code: 'ConnectionLost', errno });
    expect((error as Error).message).toBe(`POST http://127.0.0.1:${port}/api/execution/execute: ${errno}`);
  });

  it("rejects with 'Timeout' when a call is slower than timeoutMs", async () => {
    const server = await serve((_req, res) => later(1_500, () => json(res, 200, workerHealth)));
    const started = Date.now();
    const error = await rejection(worker({ baseUrl: server.url, timeoutMs: 200 }).health.get());
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(MpdClientError);
    expect(error).toMatchObject({ code: 'Timeout' });
    expect((error as Error).message).toContain('no answer within 200 ms');
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(1_000);
  });

  it("rejects with 'Timeout' when the body arrives too slowly", async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"status":"healthy",');
      later(1_000, () => res.end('"currentLoad":0,"maxLoad":1,"timestamp":"2025-09-30T10:00:00Z"}'));
    });
    const error = await rejection(worker({ baseUrl: server.url, timeoutMs: 200 }).health.get());
    expect(error).toMatchObject({ name: 'MpdClientError', code: 'Timeout' });
  });

  it("rejects with 'Aborted' when the caller's signal aborts", async () => {
    const server = await serve((_req, res) => later(1_500, () => json(res, 200, workerHealth)));
    const controller = new AbortController();
    later(100, () => controller.abort());
    const started = Date.now();
    const error = await rejection(
      worker({ baseUrl: server.url, timeoutMs: 5_000 }).health.get({ fetchOptions: { signal: controller.signal } }),
    );
    expect(error).toBeInstanceOf(MpdClientError);
    expect(error).toMatchObject({ code: 'Aborted' });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("rejects with 'Aborted' for an execute call too", async () => {
    const server = await serve((_req, res) => later(1_500, () => json(res, 200, executeSuccess)));
    const controller = new AbortController();
    later(100, () => controller.abort());
    const error = await rejection(
      worker({ baseUrl: server.url }).execution.execute({
        body: executeRequest('00:10:00'),
        fetchOptions: { signal: controller.signal },
      }),
    );
    expect(error).toMatchObject({ name: 'MpdClientError', code: 'Aborted' });
  });

  it("rejects with 'Aborted' when the call's aborter aborts it while it is out, directly and through ts-rest", async () => {
    const { server, executeArrived } = await unansweringWorker();
    for (const extra of CALL_WAYS) {
      const aborter = new CallAborter();
      const { call } = await executeArrived(aborter, extra);
      aborter.abort();
      expect(await call).toMatchObject({ name: 'MpdClientError', code: 'Aborted' });
      expect(aborter.aborted).toBe(true);
    }
    expect(server.seen).toHaveLength(2);
  });

  it('refuses an aborter another call in flight holds (TypeError naming aborter, nothing sent); its abort stops the one call', async () => {
    const { server, execute, executeArrived } = await unansweringWorker();
    for (const extra of CALL_WAYS) {
      const aborter = new CallAborter();
      const { call: first } = await executeArrived(aborter, extra);
      const second = await execute(aborter, extra);
      expect(second).toBeInstanceOf(TypeError);
      expect((second as Error).message).toMatch(/^aborter: /);
      aborter.abort();
      expect(await first).toMatchObject({ name: 'MpdClientError', code: 'Aborted' });
    }
    // One request per round: the refused call sent nothing.
    expect(server.seen).toHaveLength(2);
    expect('attach' in CallAborter.prototype).toBe(false);
  });
});

describe('execute deadlines', () => {
  it('execute is not bound by timeoutMs but by its timeout plus executeMarginMs', async () => {
    const server = await serve((_req, res) => later(600, () => json(res, 200, executeSuccess)));
    const response = await worker({ baseUrl: server.url, timeoutMs: 200 }).execution.execute({
      body: executeRequest('00:00:05'),
    });
    expect(response.status).toBe(200);
    expect(response.body).toEqual(executeSuccess);
    expect(JSON.parse(server.seen[0]!.body)).toMatchObject({ executionId: 'exec-1', timeout: '00:00:05' });
  });

  it("execute rejects with 'Timeout' after its timeout plus executeMarginMs", async () => {
    const server = await serve((_req, res) => later(600, () => json(res, 200, executeSuccess)));
    const started = Date.now();
    const error = await rejection(
      worker({ baseUrl: server.url, timeoutMs: 200, executeMarginMs: 100 }).execution.execute({
        body: executeRequest('00:00:00.2'),
      }),
    );
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(MpdClientError);
    expect(error).toMatchObject({ code: 'Timeout' });
    expect((error as Error).message).toBe(`POST ${server.url}/api/execution/execute: no answer within 300 ms`);
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(590);
  });

  it("a call's own deadlineMs wins over the body's timeout", async () => {
    const server = await serve((_req, res) => later(1_500, () => json(res, 200, executeSuccess)));
    const error = await rejection(
      worker({ baseUrl: server.url }).execution.execute({ body: executeRequest('01:00:00'), deadlineMs: 200 }),
    );
    expect(error).toMatchObject({ name: 'MpdClientError', code: 'Timeout' });
    expect((error as Error).message).toBe(`POST ${server.url}/api/execution/execute: no answer within 200 ms`);
  });

  it("any call's own deadlineMs wins over timeoutMs", async () => {
    const server = await serve((_req, res) => later(1_500, () => json(res, 200, workerHealth)));
    const error = await rejection(worker({ baseUrl: server.url, timeoutMs: 10_000 }).health.get({ deadlineMs: 200 }));
    expect(error).toMatchObject({ name: 'MpdClientError', code: 'Timeout' });
    expect((error as Error).message).toBe(`GET ${server.url}/api/health: no answer within 200 ms`);
  });

  it('succeeds when the headers come late (1.5 s) and the body trickles, under a long module timeout', async () => {
    const server = await serve((_req, res) =>
      later(1_500, () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        const text = JSON.stringify(executeSuccess);
        res.write(text.slice(0, 20));
        later(300, () => res.end(text.slice(20)));
      }),
    );
    const started = Date.now();
    const response = await worker({ baseUrl: server.url, timeoutMs: 200 }).execution.execute({
      body: executeRequest('01:00:00'),
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_750);
    expect(response).toMatchObject({ status: 200, body: executeSuccess });
  });
});

describe('execute deadlines past what a Node timer holds', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a deadline of 30 days does not fire at once (Node fires delays over 2^31 - 1 ms after 1 ms)', async () => {
    // Only the timers the deadline uses are fake: the sockets keep their own.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let arrived!: () => void;
    const requested = new Promise<void>((resolve) => (arrived = resolve));
    const server = await serve(() => arrived()); // never answers
    const controller = new AbortController();
    let settled: unknown;
    const call = worker({ baseUrl: server.url }).execution.execute({
      body: executeRequest('30.00:00:00'),
      deadlineMs: 30 * 24 * 3_600_000,
      fetchOptions: { signal: controller.signal },
    });
    call.then(
      () => (settled = 'answered'),
      (error: unknown) => (settled = error),
    );
    await requested;
    vi.advanceTimersByTime(60_000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBeUndefined();
    controller.abort();
    expect(await rejection(call)).toMatchObject({ name: 'MpdClientError', code: 'Aborted' });
  });
});

describe('answer size', () => {
  it("rejects with 'TooLarge', unread, an answer whose Content-Length is over the call's maxResponseBytes", async () => {
    const body = JSON.stringify({ ...executeSuccess, serializedResult: 'x'.repeat(2_000_000) });
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
    });
    const error = await rejection(
      worker({ baseUrl: server.url }).execution.execute({
        body: executeRequest('00:01:00'),
        maxResponseBytes: 1_000_000,
      }),
    );
    expect(error).toBeInstanceOf(MpdClientError);
    expect(error).toMatchObject({ code: 'TooLarge' });
    expect((error as Error).message).toBe(
      `POST ${server.url}/api/execution/execute: the answer is ${Buffer.byteLength(body)} bytes, over the 1000000 bytes this call reads`,
    );
  });

  it('stops reading a chunked answer (no Content-Length) once it passes the limit', async () => {
    let written = 0;
    let closedAfter: number | undefined;
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.on('close', () => (closedAfter = written));
      // Up to 256 MiB, as fast as the client reads it.
      const pump = (): void => {
        while (written < 256 * 1024 * 1024 && !res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const error = await rejection(orchestrator({ baseUrl: server.url, maxResponseBytes: 1024 * 1024 }).health.get());
    expect(error).toMatchObject({ name: 'MpdClientError', code: 'TooLarge' });
    expect((error as Error).message).toBe(
      `GET ${server.url}/api/health: the answer is larger, over the 1048576 bytes this call reads`,
    );
    await expect.poll(() => closedAfter).toBeDefined();
    // What the server got out before the client hung up: the limit plus what the sockets buffer.
    expect(closedAfter!).toBeLessThan(64 * 1024 * 1024);
  });

  it('bounds execute answers by default to what a result of DEFAULT_MAX_RESULT_BYTES can take; a smaller answer is read whole', async () => {
    const limit = executeAnswerLimit(DEFAULT_MAX_RESULT_BYTES);
    const server = await serve((req, res) => {
      if (req.url === '/api/health') return json(res, 200, workerHealth);
      // Declares one byte past the limit, sends nothing: only the declaration is read.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(limit + 1) });
      res.flushHeaders();
    });
    const client = worker({ baseUrl: server.url });
    const error = await rejection(client.execution.execute({ body: executeRequest('00:01:00') }));
    expect(error).toMatchObject({ name: 'MpdClientError', code: 'TooLarge' });
    expect((error as Error).message).toContain(`the answer is ${limit + 1} bytes, over the ${limit} bytes`);
    expect(await client.health.get()).toMatchObject({ status: 200, body: workerHealth });
  });
});

describe('undici dispatcher', () => {
  it("turns undici's own 300 s headers and body timeouts off", () => {
    expect(dispatcherOptions(30_000)).toMatchObject({ headersTimeout: 0, bodyTimeout: 0, connectTimeout: 10_000 });
    expect(dispatcherOptions(200)).toMatchObject({ headersTimeout: 0, bodyTimeout: 0, connectTimeout: 200 });
  });

  it('passes tls (CA, client certificate, verification on by default) as the connect options', async () => {
    expect(dispatcherOptions(30_000)).not.toHaveProperty('connect');
    expect(dispatcherOptions(30_000, { ca: 'CA PEM' }).connect).toEqual({ ca: 'CA PEM', rejectUnauthorized: true });
    expect(
      dispatcherOptions(30_000, { ca: 'CA PEM', cert: 'CERT PEM', key: 'KEY PEM', rejectUnauthorized: false }).connect,
    ).toEqual({ ca: 'CA PEM', cert: 'CERT PEM', key: 'KEY PEM', rejectUnauthorized: false });
    agentOptions.length = 0;
    const client = worker({ baseUrl: 'https://127.0.0.1:1', tls: { ca: 'CA PEM' } });
    // The agent is made at the first call (round Z, Z3: undici is loaded then): none before it.
    expect(agentOptions).toEqual([]);
    await rejection(client.health.get()); // nothing listens on port 1
    expect(agentOptions).toMatchObject([{ connect: { ca: 'CA PEM', rejectUnauthorized: true } }]);
  });

  it('refuses a client certificate without its key, and a key without its certificate', () => {
    expect(() => worker({ baseUrl: 'https://127.0.0.1:1', tls: { cert: 'CERT PEM' } })).toThrow(
      'tls.cert and tls.key go together',
    );
    expect(() => orchestrator({ baseUrl: 'https://127.0.0.1:1', tls: { key: 'KEY PEM' } })).toThrow(TypeError);
  });

  it('each client creates its Agent with those options, at its first call', async () => {
    agentOptions.length = 0;
    const workerClient = worker({ baseUrl: 'http://127.0.0.1:1', timeoutMs: 500 });
    const orchestratorClient = orchestrator({ baseUrl: 'http://127.0.0.1:1' });
    expect(agentOptions).toEqual([]);
    // Nothing listens on port 1: each call fails, after its client made its agent (once).
    await rejection(workerClient.health.get());
    await rejection(workerClient.health.get());
    await rejection(orchestratorClient.health.get());
    expect(agentOptions).toEqual([dispatcherOptions(500), dispatcherOptions(30_000)]);
    expect(agentOptions).toMatchObject([
      { headersTimeout: 0, bodyTimeout: 0 },
      { headersTimeout: 0, bodyTimeout: 0 },
    ]);
  });
});
