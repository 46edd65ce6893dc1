/**
 * The orchestrator's outgoing `execute` call alone, warm (issue 14, round G): the client's CPU per
 * call, this process only, against one server process answering `POST /api/execution/execute`
 * with node's own `http` (bench/servers/execute-route.ts, `http`: the cheapest server, so the
 * server never bounds the caller). The same call made several ways, in turn, alternating order:
 * - `mpd-client`: this checkout's `@mpd/client` worker client, called as the orchestrator calls
 *   it (`attempt-calls.ts` `sendExecute`: one frozen `extraHeaders`, `deadlineMs`,
 *   `maxResponseBytes`, a `CallAborter` per call; before round N the bench gave a fresh headers
 *   object and an `AbortSignal` per call, as the orchestrator did before round L);
 * - `base` (with `--base CHECKOUT`, e.g. `/work/main`): the same call through that checkout's
 *   `@mpd/client`, to compare two versions of the client in one run;
 * - `undici`: undici's `request` with the body and headers built here, the answer's JSON parsed;
 * - `http` (the baseline): node's `http.request` with a keep-alive agent.
 * `connections` calls are out at a time (one worker's slots), each on its own keep-alive connection.
 *
 *   tsx bench/execute-call.ts [--calls 4000] [--runs 3] [--connections 8] [--base CHECKOUT] [--only a,b]
 *
 * Prints per variant and run the client's CPU per call (µs, `process.cpuUsage`) and calls/s, then
 * the medians beside the baseline's of the same run.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { CallAborter, createWorkerClient } from '@mpd/client';
import { ACCEPT_OUTPUT_HEADER, type ExecuteModuleRequest, formatTimeSpan, OUTPUT_NONE } from '@mpd/contract';
import { Agent as UndiciAgent, request as undiciRequest } from 'undici';
import { benchArgs } from './lib/args.js';
import { BenchProcess, benchPath, killAll, WORKER_TOKEN } from './lib/processes.js';
import { evaluate, formatTable, type Row } from './lib/report.js';
import { median } from './lib/stats.js';

const { values } = benchArgs(
  'usage: tsx bench/execute-call.ts [--calls 4000] [--runs 3] [--connections 8] [--base CHECKOUT] [--only a,b]',
  {
    calls: { type: 'string', default: '4000' },
    runs: { type: 'string', default: '3' },
    connections: { type: 'string', default: '8' },
    only: { type: 'string', default: '' },
    base: { type: 'string', default: '' },
  },
);
const calls = Number(values.calls);
const runs = Number(values.runs);
const connections = Number(values.connections);
const only = values.only!;
/** Another checkout whose `@mpd/client` is measured beside this one's (`--base /work/main`). */
const base = values.base!;

const PATH = '/api/execution/execute';
const DEADLINE_MS = 30 * 60_000 + 60_000;
const MAX_RESPONSE_BYTES = 32 * 1024 * 1024 + 64 * 1024;

/** An execute body as the orchestrator sends for a no-op module of the dispatch bench. */
function executeBody(index: number): ExecuteModuleRequest {
  return {
    executionId: `run-0123456789abcdef.m${String(index).padStart(5, '0')}.1`,
    moduleTypeName: `m${String(index).padStart(5, '0')}`,
    serializedModule: JSON.stringify({ sleepMs: 0 }),
    dependencyResults: {},
    environmentVariables: {},
    timeout: formatTimeSpan(30 * 60_000),
    timestamp: new Date().toISOString(),
  };
}

type Call = (body: ExecuteModuleRequest) => Promise<number>;
interface Variant {
  label: string;
  call: Call;
  close: () => Promise<void>;
}

/** The orchestrator's `extraHeaders`, one frozen object for every call (`attempt-calls.ts`). */
const ACCEPTS_OUTPUT_NONE = Object.freeze({ [ACCEPT_OUTPUT_HEADER]: OUTPUT_NONE });

/** What a checkout's `@mpd/client` gives a variant: its worker client and its own `CallAborter`. */
type ClientModule = Pick<typeof import('@mpd/client'), 'createWorkerClient' | 'CallAborter'>;

/** The orchestrator's call through a worker client of `client` (this checkout's `@mpd/client`, or another's). */
function clientVariant(label: string, client: ClientModule, url: string): Variant {
  const worker = client.createWorkerClient({ baseUrl: url, token: WORKER_TOKEN });
  return {
    label,
    call: async (body) => {
      const answer = await worker.execution.execute({
        body,
        extraHeaders: ACCEPTS_OUTPUT_NONE,
        deadlineMs: DEADLINE_MS,
        maxResponseBytes: MAX_RESPONSE_BYTES,
        aborter: new client.CallAborter(),
      });
      return answer.status;
    },
    close: () => worker.close(),
  };
}

function variants(url: string, baseClient: ClientModule | undefined): Record<string, () => Variant> {
  return {
    ...(baseClient ? { base: () => clientVariant(`${base}'s @mpd/client worker client`, baseClient, url) } : {}),
    'mpd-client': () =>
      clientVariant("this checkout's @mpd/client worker client", { createWorkerClient, CallAborter }, url),
    undici: () => {
      const dispatcher = new UndiciAgent({ keepAliveTimeout: 10_000 });
      const headers = {
        'content-type': 'application/json',
        authorization: `Bearer ${WORKER_TOKEN}`,
        [ACCEPT_OUTPUT_HEADER]: OUTPUT_NONE,
      };
      return {
        label: "undici's request, body and headers built here",
        call: async (body) => {
          const response = await undiciRequest(url + PATH, {
            method: 'POST',
            headers,
            body: JSON.stringify(body),
            dispatcher,
          });
          await response.body.json();
          return response.statusCode;
        },
        close: () => dispatcher.close(),
      };
    },
    http: () => {
      const agent = new HttpAgent({ keepAlive: true, maxSockets: connections });
      const target = new URL(url);
      return {
        label: "node's http.request, keep-alive agent",
        call: (body) =>
          new Promise<number>((resolve, reject) => {
            const text = JSON.stringify(body);
            const request = httpRequest(
              {
                host: target.hostname,
                port: target.port,
                path: PATH,
                method: 'POST',
                agent,
                headers: {
                  'content-type': 'application/json',
                  'content-length': Buffer.byteLength(text),
                  authorization: `Bearer ${WORKER_TOKEN}`,
                  [ACCEPT_OUTPUT_HEADER]: OUTPUT_NONE,
                },
              },
              (response) => {
                const chunks: Buffer[] = [];
                response.on('data', (chunk: Buffer) => chunks.push(chunk));
                response.on('end', () => {
                  JSON.parse(Buffer.concat(chunks).toString('utf8'));
                  resolve(response.statusCode ?? 0);
                });
                response.on('error', reject);
              },
            );
            request.on('error', reject);
            request.end(text);
          }),
        close: async () => agent.destroy(),
      };
    },
  };
}

/** `count` calls, `connections` at a time; the client's CPU per call (µs) and calls/s. */
async function measure(variant: Variant, count: number): Promise<{ cpuMicros: number; perSecond: number }> {
  let next = 0;
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (next < count) {
        const status = await variant.call(executeBody(next++));
        if (status !== 200) throw new Error(`${variant.label}: answered ${status}`);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  return { cpuMicros: (used.user + used.system) / count, perSecond: count / seconds };
}

const server = new BenchProcess('execute-call-server', benchPath('servers/execute-route.ts'), ['http']);
try {
  const url = await server.listeningUrl();
  const baseClient =
    base === '' ? undefined : ((await import(join(base, 'packages/client/src/index.ts'))) as ClientModule);
  const all = variants(url, baseClient);
  const names = only === '' ? Object.keys(all) : only.split(',');
  if (!names.includes('http')) names.push('http');
  const made = names.map((name) => all[name]!());
  process.stdout.write(
    `load average ${loadavg()
      .map((load) => load.toFixed(2))
      .join(' ')}; ${calls} calls per run, ${connections} at a time\n`,
  );
  for (const variant of made) await measure(variant, calls); // warm-up
  const results = made.map(() => [] as { cpuMicros: number; perSecond: number }[]);
  for (let run = 0; run < runs; run++) {
    for (let step = 0; step < made.length; step++) {
      const index = (run + step) % made.length;
      const figures = await measure(made[index]!, calls);
      results[index]!.push(figures);
      process.stdout.write(
        `${names[index]}: ${figures.cpuMicros.toFixed(1)} µs CPU/call, ${figures.perSecond.toFixed(0)} calls/s\n`,
      );
    }
  }
  const httpIndex = names.indexOf('http');
  const baseCpu = results[httpIndex]!.map((run) => run.cpuMicros);
  const benchmark = `execute call, client side, ${connections} connections`;
  const rows: Row[] = made.map((variant, index) => ({
    benchmark,
    metric: `${variant.label}: client CPU per call`,
    unit: 'us',
    value: median(results[index]!.map((run) => run.cpuMicros)),
    runs: results[index]!.map((run) => run.cpuMicros),
    ...(index !== httpIndex ? { baseline: median(baseCpu), baselineLabel: "node's http" } : {}),
  }));
  process.stdout.write(`${formatTable(rows.map(evaluate))}\n`);
  process.stdout.write(
    `load average at the end ${loadavg()
      .map((load) => load.toFixed(2))
      .join(' ')}\n`,
  );
  await Promise.all(made.map((variant) => variant.close()));
} finally {
  await server.stop();
  killAll();
}
