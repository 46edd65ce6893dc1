/**
 * Benchmark 4: scale.
 * - Heartbeats: N simulated workers (a load generator, not N processes) register with a real
 *   orchestrator process, then heartbeat at their interval: each worker once per interval, the
 *   requests evenly spread over it (an open-loop load, see `pacedLoad`); heartbeat latency, the
 *   orchestrator's CPU and memory, and the latency of `GET /api/workers` listing them all.
 *   10,000 workers against a baseline of 100.
 * - Scheduler: the CPU time the scheduler spends per module on a 10,000-module DAG against a
 *   1,000-module one (same shape), on simulated workers that answer at once (see
 *   servers/scheduler.ts), so that only the scheduler's own work is timed.
 */
import { orchestratorContract } from '@mpd/contract';
import type { ProcessStats } from './lib/ipc.js';
import { pacedLoad, registerWorkers, type SimulatedWorker } from './lib/load.js';
import { ADMIN_TOKEN, BenchProcess, benchPath, JOIN_TOKEN, ORCHESTRATOR_SERVER } from './lib/processes.js';
import type { Row } from './lib/report.js';
import { median, percentile } from './lib/stats.js';
import type { SchedulerTimings } from './servers/scheduler.js';

export interface ScaleConfig {
  workers: number;
  baselineWorkers: number;
  /** Heartbeat interval the orchestrator gives the workers (s); each window lasts one interval. */
  intervalSeconds: number;
  runs: number;
  listCalls: number;
  schedulerModules: number;
  schedulerBaselineModules: number;
  schedulerWorkers: number;
  /** The same DAG again on this many simulated workers (the cluster of the heartbeat test). */
  schedulerManyWorkers: number;
  schedulerSlots: number;
  schedulerRuns: number;
  /** A scheduler run that takes longer is stopped and reported as not finished. */
  schedulerRunTimeoutMs: number;
}

export const SCALE_FULL: ScaleConfig = {
  workers: 10_000,
  baselineWorkers: 100,
  intervalSeconds: 10,
  runs: 3,
  listCalls: 10,
  schedulerModules: 10_000,
  schedulerBaselineModules: 1_000,
  schedulerWorkers: 100,
  schedulerManyWorkers: 10_000,
  schedulerSlots: 4,
  schedulerRuns: 3,
  schedulerRunTimeoutMs: 60_000,
};
export const SCALE_SMOKE: ScaleConfig = {
  workers: 50,
  baselineWorkers: 10,
  intervalSeconds: 1,
  runs: 1,
  listCalls: 2,
  schedulerModules: 200,
  schedulerBaselineModules: 50,
  schedulerWorkers: 5,
  schedulerManyWorkers: 50,
  schedulerSlots: 2,
  schedulerRuns: 1,
  schedulerRunTimeoutMs: 30_000,
};

interface HeartbeatScale {
  workers: number;
  registrationsPerSecond: number;
  p50: number[];
  p99: number[];
  cpuPercent: number[];
  rssMb: number;
  peakRssMb: number;
  listP50: number;
  listP99: number;
  listMb: number;
}

const MB = 1024 * 1024;

/** Each worker's heartbeat once per interval, round robin over all of them, evenly spread. */
function heartbeatsAtInterval(url: string, workers: SimulatedWorker[], intervalSeconds: number) {
  let next = 0;
  return pacedLoad({
    url,
    rate: workers.length / intervalSeconds,
    durationS: intervalSeconds,
    connections: 64,
    next: () => {
      const worker = workers[next++ % workers.length]!;
      return {
        method: 'POST',
        path: orchestratorContract.workers.heartbeat.path,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${worker.credential}` },
        body: JSON.stringify({ workerId: worker.id, currentLoad: next % 3 }),
      };
    },
  });
}

async function listLatency(url: string, calls: number): Promise<{ latencies: number[]; bytes: number }> {
  const latencies: number[] = [];
  let bytes = 0;
  for (let call = 0; call < calls; call++) {
    const started = performance.now();
    const response = await fetch(`${url}${orchestratorContract.workers.list.path}`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const text = await response.text();
    latencies.push(performance.now() - started);
    if (response.status !== 200) throw new Error(`GET /api/workers answered ${response.status}`);
    bytes = text.length;
  }
  return { latencies, bytes };
}

async function heartbeatScale(count: number, config: ScaleConfig): Promise<HeartbeatScale> {
  const orchestrator = new BenchProcess('orchestrator', ORCHESTRATOR_SERVER, [], {
    MPD_BENCH_JOIN_TOKEN: JOIN_TOKEN,
    MPD_BENCH_ADMIN_TOKEN: ADMIN_TOKEN,
    MPD_BENCH_HEARTBEAT_INTERVAL: String(config.intervalSeconds),
  });
  try {
    const url = await orchestrator.listeningUrl();
    const { workers, perSecond } = await registerWorkers(url, count, `sim${count}`);
    const result: HeartbeatScale = {
      workers: count,
      registrationsPerSecond: perSecond,
      p50: [],
      p99: [],
      cpuPercent: [],
      rssMb: 0,
      peakRssMb: 0,
      listP50: 0,
      listP99: 0,
      listMb: 0,
    };
    for (let run = 0; run < config.runs; run++) {
      const before = await orchestrator.request<ProcessStats>('stats');
      const started = performance.now();
      const load = await heartbeatsAtInterval(url, workers, config.intervalSeconds);
      const elapsedMs = performance.now() - started;
      const after = await orchestrator.request<ProcessStats>('stats');
      if (load.non2xx + load.errors > 0) {
        throw new Error(`${load.non2xx + load.errors} heartbeats of ${count} workers failed or got an error status`);
      }
      result.p50.push(percentile(load.latencies, 50));
      result.p99.push(percentile(load.latencies, 99));
      result.cpuPercent.push(((after.cpuMicros - before.cpuMicros) / 1_000 / elapsedMs) * 100);
      result.rssMb = after.rss / MB;
    }
    const list = await listLatency(url, config.listCalls);
    result.listP50 = percentile(list.latencies, 50);
    result.listP99 = percentile(list.latencies, 99);
    result.listMb = list.bytes / MB;
    const registered = await orchestrator.request<number>('workers');
    if (registered !== count) throw new Error(`the orchestrator has ${registered} workers, not ${count}`);
    result.peakRssMb = (await orchestrator.request<ProcessStats>('stats')).maxRss / MB;
    return result;
  } finally {
    await orchestrator.stop();
  }
}

/**
 * Scheduler CPU time per module for DAGs of `sizes` modules on `workers` simulated workers, in
 * a process of its own; after one warm-up run per size, `runs` runs per size, interleaved.
 * A run over the time limit stops the process: that size and the later ones get NaN.
 */
async function schedulerCost(config: ScaleConfig, workers: number, sizes: number[]): Promise<number[][]> {
  const results = sizes.map((): number[] => []);
  // --expose-gc: the scheduler process collects the garbage of setting up a run before timing it.
  const scheduler = new BenchProcess('scheduler', benchPath('servers/scheduler.ts'), [], {}, ['--expose-gc']);
  let timer: NodeJS.Timeout | undefined;
  const run = async (size: number): Promise<number> => {
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), config.schedulerRunTimeoutMs);
    });
    const request = scheduler.request<SchedulerTimings>('run', {
      size,
      workers,
      slots: config.schedulerSlots,
      seed: 1,
    });
    // After a timeout the process is stopped and this rejects: nobody waits for it any more.
    request.catch(() => undefined);
    try {
      const timings = await Promise.race([request, timedOut]);
      if (timings.status !== 'Successful') throw new Error(`the scheduler run ended ${timings.status}`);
      return timings.cpuMs / size;
    } finally {
      clearTimeout(timer);
    }
  };
  try {
    await scheduler.listeningUrl();
    // Warm-up: the first runs pay for compiling the scheduler's code.
    for (const size of sizes) await run(size);
    for (let index = 0; index < config.schedulerRuns; index++) {
      for (const [position, size] of sizes.entries()) results[position]!.push(await run(size));
    }
  } catch (error) {
    const message = (error as Error).message;
    const outOfMemory = /heap out of memory/.test(message);
    if (message !== 'timeout' && !outOfMemory) throw error;
    process.stdout.write(
      `  a scheduler run on ${workers} workers ${outOfMemory ? 'ran out of memory' : `took over ${config.schedulerRunTimeoutMs / 1000} s`}: reported as not finished\n`,
    );
    for (const values of results) if (values.length < config.schedulerRuns) values.push(Number.NaN);
  } finally {
    await scheduler.stop(1_000);
  }
  return results;
}

export async function scaleBench(config: ScaleConfig): Promise<{ rows: Row[]; details: unknown }> {
  const baseline = await heartbeatScale(config.baselineWorkers, config);
  const scaled = await heartbeatScale(config.workers, config);
  const [large, small] = await schedulerCost(config, config.schedulerWorkers, [
    config.schedulerModules,
    config.schedulerBaselineModules,
  ]);
  const [many] = await schedulerCost(config, config.schedulerManyWorkers, [config.schedulerModules]);
  const scheduler = { large: large!, small: small!, many: many! };

  const benchmark = `4 scale, ${config.workers.toLocaleString('en-US')} workers`;
  const label = `${config.baselineWorkers} workers`;
  const rate = Math.round(config.workers / config.intervalSeconds);
  const rows: Row[] = [
    {
      benchmark,
      metric: `heartbeat p99 (each worker every ${config.intervalSeconds} s: ${rate.toLocaleString('en-US')}/s)`,
      unit: 'ms',
      value: median(scaled.p99),
      runs: scaled.p99,
      baseline: median(baseline.p99),
      baselineRuns: baseline.p99,
      baselineLabel: label,
      target: { on: 'value', kind: 'max', limit: 20 },
    },
    {
      benchmark,
      metric: 'heartbeat p50',
      unit: 'ms',
      value: median(scaled.p50),
      baseline: median(baseline.p50),
      baselineLabel: label,
    },
    {
      benchmark,
      metric: 'orchestrator CPU while heartbeats come in',
      unit: '% core',
      value: median(scaled.cpuPercent),
      runs: scaled.cpuPercent,
      baseline: median(baseline.cpuPercent),
      baselineLabel: label,
    },
    {
      benchmark,
      metric: 'orchestrator peak RSS (registrations, heartbeats, listings)',
      unit: 'MB',
      value: scaled.peakRssMb,
      baseline: baseline.peakRssMb,
      baselineLabel: label,
      target: { on: 'value', kind: 'max', limit: 300 },
    },
    {
      benchmark,
      metric: 'orchestrator RSS after the heartbeats',
      unit: 'MB',
      value: scaled.rssMb,
      baseline: baseline.rssMb,
      baselineLabel: label,
    },
    {
      benchmark,
      metric: `GET /api/workers p50 (${scaled.listMb.toFixed(1)} MB of JSON)`,
      unit: 'ms',
      value: scaled.listP50,
      baseline: baseline.listP50,
      baselineLabel: label,
    },
    {
      benchmark,
      metric: `GET /api/workers p99 (${config.listCalls} calls)`,
      unit: 'ms',
      value: scaled.listP99,
      baseline: baseline.listP99,
      baselineLabel: label,
    },
    {
      benchmark,
      metric: 'registrations/s (16 at a time)',
      unit: 'reg/s',
      value: scaled.registrationsPerSecond,
      baseline: baseline.registrationsPerSecond,
      baselineLabel: label,
    },
    {
      benchmark: `4 scale, ${config.schedulerModules.toLocaleString('en-US')}-module DAG`,
      metric: `scheduler CPU per module (${config.schedulerWorkers} simulated workers x ${config.schedulerSlots} slots)`,
      unit: 'ms',
      value: median(scheduler.large),
      runs: scheduler.large,
      baseline: median(scheduler.small),
      baselineRuns: scheduler.small,
      baselineLabel: `${config.schedulerBaselineModules.toLocaleString('en-US')}-module DAG`,
      target: { on: 'value', kind: 'max', limit: 0.1 },
    },
    {
      benchmark: `4 scale, ${config.schedulerModules.toLocaleString('en-US')}-module DAG`,
      metric: `scheduler CPU per module on ${config.schedulerManyWorkers.toLocaleString('en-US')} simulated workers x ${config.schedulerSlots} slots`,
      unit: 'ms',
      value: median(scheduler.many),
      runs: scheduler.many,
      baseline: median(scheduler.large),
      baselineRuns: scheduler.large,
      baselineLabel: `${config.schedulerWorkers} workers`,
      target: { on: 'value', kind: 'max', limit: 0.1 },
    },
  ];
  return { rows, details: { config, baseline, scaled, scheduler } };
}
