/**
 * Benchmark 7, the libraries on the worker's route (issue 14): how much of a worker's
 * per-module cost is express, ts-rest and zod. One process per way of answering
 * `POST /api/execution/execute` with a no-op module's answer (bench/servers/execute-route.ts:
 * node's `http` alone, express + `express.json()`, + ts-rest with zod on the worker contract,
 * the worker's whole app plumbing from server-kit), the same autocannon load on each in turn
 * (the same execute body a no-op module of the dispatch bench gets, `connections` at a time,
 * as the orchestrator's calls to one worker), alternating order; per request, the server
 * process's CPU time (µs) and requests/s. Baseline: node's `http`.
 */
import { executeBody } from './lib/execute-body.js';
import { runLoad } from './lib/load.js';
import { BenchProcess, benchPath, WORKER_TOKEN } from './lib/processes.js';
import type { Row } from './lib/report.js';
import { median } from './lib/stats.js';
import type { ProcessStats } from './lib/ipc.js';

export interface RouteConfig {
  runs: number;
  durationS: number;
  warmupS: number;
  connections: number;
}

export const ROUTE_FULL: RouteConfig = { runs: 3, durationS: 3, warmupS: 1, connections: 8 };
export const ROUTE_SMOKE: RouteConfig = { runs: 1, durationS: 0.5, warmupS: 0, connections: 2 };

const VARIANTS = ['http', 'express', 'ts-rest', 'api-app'] as const;
type Variant = (typeof VARIANTS)[number];
const LABELS: Record<Variant, string> = {
  http: "node's http",
  express: 'express + express.json()',
  'ts-rest': 'express + ts-rest + zod',
  'api-app': "the worker's app plumbing (server-kit createApiApp, bearer check)",
};

/** The execute request of a no-op module as the orchestrator sends it to a worker. */
export function executeRequest() {
  return {
    method: 'POST' as const,
    path: '/api/execution/execute',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${WORKER_TOKEN}` },
    body: executeBody(),
  };
}

/** One autocannon run of `connections` at a time for `durationS` on `server` (at `url`): requests/s and its CPU per request (µs). */
export async function measureRoute(
  server: BenchProcess,
  url: string,
  name: string,
  connections: number,
  durationS: number,
): Promise<{ perSecond: number; cpuMicros: number }> {
  const before = await server.request<ProcessStats>('stats');
  const load = await runLoad({ url, connections, duration: durationS, requests: [executeRequest()] });
  const after = await server.request<ProcessStats>('stats');
  if (load.ok === 0 || load.non2xx > 0) throw new Error(`${name}: ${load.non2xx} answers not 2xx`);
  return { perSecond: load.perSecond, cpuMicros: (after.cpuMicros - before.cpuMicros) / load.ok };
}

export async function routeBench(config: RouteConfig): Promise<{ rows: Row[]; details: unknown }> {
  const servers = VARIANTS.map(
    (variant) => new BenchProcess(`route-${variant}`, benchPath('servers/execute-route.ts'), [variant]),
  );
  try {
    const urls = await Promise.all(servers.map((server) => server.listeningUrl()));
    const measure = (index: number, durationS: number) =>
      measureRoute(servers[index]!, urls[index]!, VARIANTS[index]!, config.connections, durationS);
    if (config.warmupS > 0) for (let index = 0; index < servers.length; index++) await measure(index, config.warmupS);
    const runs = VARIANTS.map(() => [] as { perSecond: number; cpuMicros: number }[]);
    for (let run = 0; run < config.runs; run++) {
      for (let step = 0; step < servers.length; step++) {
        const index = (run + step) % servers.length;
        runs[index]!.push(await measure(index, config.durationS));
      }
    }
    const benchmark = `7 execute route, ${config.connections} connections`;
    const rows: Row[] = [];
    const of = (index: number, pick: (run: { perSecond: number; cpuMicros: number }) => number) =>
      runs[index]!.map(pick);
    VARIANTS.forEach((variant, index) => {
      const cpu = of(index, (run) => run.cpuMicros);
      const rate = of(index, (run) => run.perSecond);
      rows.push(
        {
          benchmark,
          metric: `${LABELS[variant]}: server CPU per request`,
          unit: 'us',
          value: median(cpu),
          runs: cpu,
          ...(index > 0 ? { baseline: median(of(0, (run) => run.cpuMicros)), baselineLabel: LABELS.http } : {}),
        },
        {
          benchmark,
          metric: `${LABELS[variant]}: requests/s`,
          unit: 'req/s',
          value: median(rate),
          runs: rate,
          ...(index > 0 ? { baseline: median(of(0, (run) => run.perSecond)), baselineLabel: LABELS.http } : {}),
        },
      );
    });
    return {
      rows,
      details: { config, runs: Object.fromEntries(VARIANTS.map((variant, index) => [variant, runs[index]])) },
    };
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
  }
}
