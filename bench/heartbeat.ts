/**
 * Benchmark 1: heartbeat throughput through the orchestrator's full stack (express, helmet's
 * headers, rate limiters, ts-rest with the body's check, bearer authentication with per-worker
 * credentials, the registry) against a bare express app with `express.json()` answering the same
 * JSON on the same route. Both are real processes; the same autocannon load (the same requests:
 * each simulated worker's heartbeat as a worker sends it, with its own credential) runs against
 * each in turn. `tsx bench/heartbeat-compare.ts` runs it for several checkouts at once.
 */
import { registerWorkers, heartbeatRequest, runLoad } from './lib/load.js';
import { ADMIN_TOKEN, BenchProcess, benchPath, JOIN_TOKEN, ORCHESTRATOR_SERVER } from './lib/processes.js';
import type { Row } from './lib/report.js';
import { median, percentile } from './lib/stats.js';

export interface HeartbeatConfig {
  runs: number;
  durationS: number;
  warmupS: number;
  connections: number;
  workers: number;
}

export const HEARTBEAT_FULL: HeartbeatConfig = { runs: 5, durationS: 5, warmupS: 3, connections: 16, workers: 100 };
export const HEARTBEAT_SMOKE: HeartbeatConfig = { runs: 1, durationS: 0.5, warmupS: 0, connections: 4, workers: 5 };

export async function heartbeatBench(config: HeartbeatConfig): Promise<{ rows: Row[]; details: unknown }> {
  const orchestrator = new BenchProcess('orchestrator', ORCHESTRATOR_SERVER, [], {
    MPD_BENCH_JOIN_TOKEN: JOIN_TOKEN,
    MPD_BENCH_ADMIN_TOKEN: ADMIN_TOKEN,
  });
  const bare = new BenchProcess('bare-express', benchPath('servers/bare-express.ts'));
  try {
    const [mpdUrl, bareUrl] = await Promise.all([orchestrator.listeningUrl(), bare.listeningUrl()]);
    const { workers } = await registerWorkers(mpdUrl, config.workers, 'hb');
    const requests = workers.map(heartbeatRequest);
    const load = (url: string, durationS: number) =>
      runLoad({ url, connections: config.connections, duration: durationS, requests });

    if (config.warmupS > 0) {
      await load(bareUrl, config.warmupS);
      await load(mpdUrl, config.warmupS);
    }
    const mpdRuns: Awaited<ReturnType<typeof load>>[] = [];
    const bareRuns: Awaited<ReturnType<typeof load>>[] = [];
    for (let run = 0; run < config.runs; run++) {
      // Alternate the order so that drift (thermal, other load) does not favour one side.
      if (run % 2 === 0) {
        bareRuns.push(await load(bareUrl, config.durationS));
        mpdRuns.push(await load(mpdUrl, config.durationS));
      } else {
        mpdRuns.push(await load(mpdUrl, config.durationS));
        bareRuns.push(await load(bareUrl, config.durationS));
      }
    }
    const failures = mpdRuns.reduce((total, run) => total + run.non2xx + run.errors, 0);
    if (failures > 0) throw new Error(`the orchestrator answered ${failures} heartbeats with an error or not at all`);

    const rps = (runs: typeof mpdRuns) => runs.map((run) => run.perSecond);
    const p = (runs: typeof mpdRuns, q: number) => runs.map((run) => percentile(run.latencies, q));
    const benchmark = '1 heartbeat throughput';
    const rows: Row[] = [
      {
        benchmark,
        metric: `heartbeats/s (${config.connections} connections, ${config.workers} workers)`,
        unit: 'req/s',
        value: median(rps(mpdRuns)),
        runs: rps(mpdRuns),
        baseline: median(rps(bareRuns)),
        baselineRuns: rps(bareRuns),
        baselineLabel: 'bare express',
        target: { on: 'ratio', kind: 'min', limit: 0.85 },
      },
      {
        benchmark,
        metric: 'latency p50 under that load',
        unit: 'ms',
        value: median(p(mpdRuns, 50)),
        baseline: median(p(bareRuns, 50)),
        baselineLabel: 'bare express',
      },
      {
        benchmark,
        metric: 'latency p99 under that load',
        unit: 'ms',
        value: median(p(mpdRuns, 99)),
        baseline: median(p(bareRuns, 99)),
        baselineLabel: 'bare express',
      },
    ];
    return { rows, details: { config, mpd: rps(mpdRuns), bare: rps(bareRuns) } };
  } finally {
    await Promise.all([orchestrator.stop(), bare.stop()]);
  }
}
