/**
 * The floor benchmark's HTTP client (issue 14, bench/floor.ts): one process making `execute`
 * calls, `concurrency` at a time over keep-alive loopback connections, for `durationS`, and
 * answering how many it made and its own CPU time meanwhile. The client, by `variant`:
 * - `http`: node's `http.request` with a keep-alive `Agent` (the body serialised, the answer
 *   read and parsed by hand);
 * - `undici`: undici's `request` on an `Agent` (the same by hand);
 * - `ts-rest`: ts-rest's `initClient` on the worker contract, its fetcher undici's `request` and
 *   nothing else (no response validation, as `@mpd/client`'s default);
 * - `mpd-client`: `@mpd/client`'s `createWorkerClient`, called as the orchestrator calls a worker
 *   (its `execute` past ts-rest's client since round G, `directRoute`; our fetcher: deadline
 *   timer, abort controller, size limit, headers).
 */
import { type IncomingMessage, Agent as HttpAgent, request as httpRequest } from 'node:http';
import { createWorkerClient } from '@mpd/client';
import {
  ACCEPT_OUTPUT_HEADER,
  DEFAULT_MAX_RESULT_BYTES,
  executeAnswerLimit,
  OUTPUT_NONE,
  workerContract,
} from '@mpd/contract';
import { type ApiFetcher, initClient } from '@ts-rest/core';
import { Agent, type Dispatcher, request } from 'undici';
import { executeBodyOf } from '../lib/execute-body.js';
import { serveIpc } from '../lib/ipc.js';
import { percentile } from '../lib/stats.js';
import { WORKER_TOKEN } from '../lib/processes.js';

export type FloorClient = 'http' | 'undici' | 'ts-rest' | 'mpd-client';

export interface FloorClientRun {
  client: FloorClient;
  url: string;
  /**
   * Servers called side by side, `concurrency` at a time each (the cold floor's two workers);
   * @default [url]
   */
  urls?: string[];
  concurrency: number;
  durationS: number;
  /** Calls to make in all instead of calling for `durationS`, each taken by the next free lane of any url. */
  calls?: number;
}

/**
 * What one run made: calls answered 200, and this process's CPU time over them, µs; with one
 * call at a time, also the round trip's p50 and p99 (µs: the call made → its answer parsed).
 */
export interface FloorClientResult {
  calls: number;
  cpuMicros: number;
  elapsedMs: number;
  latency?: { p50: number; p99: number };
}

const PATH = workerContract.execution.execute.path;
const HEADERS = { 'content-type': 'application/json', authorization: `Bearer ${WORKER_TOKEN}` };

/** One call of `client`: sends an execute body, resolves once its answer is read and parsed. */
type Call = (index: number) => Promise<void>;

/** @throws unless `status` is 200 (`answer` is only read then: the measured calls do not pay for it) */
function expectOk(status: number | undefined, answer: () => string): void {
  if (status !== 200) throw new Error(`execute answered ${status}: ${answer().slice(0, 200)}`);
}

function callerOf(client: FloorClient, url: string, concurrency: number): { call: Call; close: () => Promise<void> } {
  if (client === 'http') {
    const agent = new HttpAgent({ keepAlive: true, maxSockets: concurrency });
    const { hostname, port } = new URL(url);
    const call: Call = (index) =>
      new Promise<void>((resolve, reject) => {
        const body = JSON.stringify(executeBodyOf(index));
        const req = httpRequest(
          {
            agent,
            hostname,
            port,
            path: PATH,
            method: 'POST',
            headers: { ...HEADERS, 'content-length': Buffer.byteLength(body) },
          },
          (res: IncomingMessage) => {
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              try {
                expectOk(res.statusCode, () => text);
                JSON.parse(text);
                resolve();
              } catch (error) {
                reject(error as Error);
              }
            });
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    return { call, close: async () => agent.destroy() };
  }
  if (client === 'mpd-client') {
    const mpd = createWorkerClient({ baseUrl: url, token: WORKER_TOKEN });
    const call: Call = async (index) => {
      // As the orchestrator calls it (runner/attempt-calls.ts): its header, deadline, answer bound and abort signal.
      const response = await mpd.execution.execute({
        body: executeBodyOf(index) as never,
        extraHeaders: { [ACCEPT_OUTPUT_HEADER]: OUTPUT_NONE },
        deadlineMs: 30 * 60_000,
        maxResponseBytes: executeAnswerLimit(DEFAULT_MAX_RESULT_BYTES),
        fetchOptions: { signal: new AbortController().signal },
      });
      expectOk(response.status, () => JSON.stringify(response.body));
    };
    return { call, close: () => mpd.close() };
  }
  const dispatcher = new Agent({ keepAliveTimeout: 10_000, headersTimeout: 0, bodyTimeout: 0 });
  if (client === 'undici') {
    const target = `${url}${PATH}`;
    const call: Call = async (index) => {
      const response = await request(target, {
        method: 'POST',
        headers: HEADERS,
        body: JSON.stringify(executeBodyOf(index)),
        dispatcher,
      });
      const text = await response.body.text();
      expectOk(response.statusCode, () => text);
      JSON.parse(text);
    };
    return { call, close: () => dispatcher.close() };
  }
  // 'ts-rest': ts-rest's client on the same undici `request`.
  const api: ApiFetcher = async (args) => {
    const response = await request(args.path, {
      method: args.method as Dispatcher.HttpMethod,
      headers: args.headers,
      body: args.body as string,
      dispatcher,
    });
    const text = await response.body.text();
    return { status: response.statusCode, body: JSON.parse(text) as unknown, headers: new Headers() };
  };
  const tsRest = initClient(workerContract, {
    baseUrl: url,
    baseHeaders: { authorization: HEADERS.authorization },
    api,
    throwOnUnknownStatus: true,
  });
  const call: Call = async (index) => {
    const response = await tsRest.execution.execute({ body: executeBodyOf(index) as never });
    expectOk(response.status, () => JSON.stringify(response.body));
  };
  return { call, close: () => dispatcher.close() };
}

async function run({
  client,
  url,
  urls = [url],
  concurrency,
  durationS,
  calls: count,
}: FloorClientRun): Promise<FloorClientResult> {
  const callers = urls.map((target) => callerOf(client, target, concurrency));
  try {
    // The connections are opened (and the code warmed a little) before the measured window.
    await Promise.all(callers.flatMap(({ call }) => Array.from({ length: concurrency }, (_, index) => call(index))));
    let calls = 0;
    const started = performance.now();
    const deadline = started + durationS * 1_000;
    // With a count, the lanes take calls until it is reached; otherwise until the deadline.
    const more = count === undefined ? () => performance.now() < deadline : () => calls < count;
    const cpuBefore = process.cpuUsage();
    // One at a time, each call's round trip is timed (the chain's case: latency, not throughput).
    const times: number[] | undefined = concurrency === 1 && callers.length === 1 ? [] : undefined;
    await Promise.all(
      callers.flatMap(({ call }) =>
        Array.from({ length: concurrency }, async () => {
          while (more()) {
            const start = performance.now();
            await call(calls++ % 2_000);
            times?.push((performance.now() - start) * 1_000);
          }
        }),
      ),
    );
    const cpu = process.cpuUsage(cpuBefore);
    return {
      calls,
      cpuMicros: cpu.user + cpu.system,
      elapsedMs: performance.now() - started,
      ...(times ? { latency: { p50: percentile(times, 50), p99: percentile(times, 99) } } : {}),
    };
  } finally {
    await Promise.all(callers.map(({ close }) => close()));
  }
}

serveIpc({ run: (payload: FloorClientRun) => run(payload) });
process.stdout.write('floor client listening on http://127.0.0.1/ (ipc)\n');
process.on('SIGTERM', () => process.exit(0));
