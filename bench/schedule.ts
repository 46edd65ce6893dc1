/**
 * Benchmark 3: schedule efficiency. A seeded random DAG of modules that sleep (20-200 ms in the
 * full run) runs on 2 worker processes of 8 slots each; its makespan (as the orchestrator saw
 * it) is compared with the lower bound max(critical path, total work / total slots), which no
 * schedule can beat. Each measured run is a pair: a first run, where the scheduler knows no
 * durations (it starts the longest chain of dependants in modules first), then a run given the
 * first one's durations as hints, as the CLI's `--timings FILE` does from run to run (it
 * starts the most remaining work first); the target is judged on the second. For context,
 * ideal list schedules (zero overhead) of the same DAG on the same slots are simulated: in
 * the first run's order, in plain pipeline order, and longest path first (the hinted order
 * with exact durations).
 */
import { startCluster } from './lib/cluster.js';
import { bottomLevels, buildDag, criticalPathMs, type DagSpec, simulateListSchedule } from './lib/dag.js';
import type { Row } from './lib/report.js';
import { median, percentile, sum } from './lib/stats.js';

export interface ScheduleConfig {
  spec: DagSpec;
  runs: number;
  warmup: boolean;
  workers: number;
  slots: number;
}

export const SCHEDULE_FULL: ScheduleConfig = {
  spec: { shape: 'random', size: 300, seed: 1, minMs: 20, maxMs: 200 },
  runs: 3,
  warmup: true,
  workers: 2,
  slots: 8,
};
export const SCHEDULE_SMOKE: ScheduleConfig = {
  spec: { shape: 'random', size: 30, seed: 1, minMs: 5, maxMs: 20 },
  runs: 1,
  warmup: false,
  workers: 2,
  slots: 2,
};

export async function scheduleBench(config: ScheduleConfig): Promise<{ rows: Row[]; details: unknown }> {
  const nodes = buildDag(config.spec);
  const slots = config.workers * config.slots;
  const totalWork = sum(nodes.map((node) => node.sleepMs));
  const criticalPath = criticalPathMs(nodes);
  const lowerBound = Math.max(criticalPath, totalWork / slots);
  const inPipelineOrder = simulateListSchedule(nodes, slots, (a, b) => a.name.localeCompare(b.name));
  // The scheduler's rule: the longest chain of dependants counted in modules (durations unknown).
  const chains = bottomLevels(nodes.map((node) => ({ ...node, sleepMs: 1 })));
  const inSchedulerOrder = simulateListSchedule(
    nodes,
    slots,
    (a, b) => chains.get(b.name)! - chains.get(a.name)! || a.name.localeCompare(b.name),
  );
  const levels = bottomLevels(nodes);
  const longestPathFirst = simulateListSchedule(
    nodes,
    slots,
    (a, b) => levels.get(b.name)! - levels.get(a.name)! || a.name.localeCompare(b.name),
  );

  const cluster = await startCluster(config.spec, config.workers, config.slots);
  const makespans: number[] = [];
  const hintedMakespans: number[] = [];
  /** Per run, the modules' time as the workers measured it over the time they were asked to sleep. */
  const workOverruns: number[] = [];
  /** Per run: from dispatch to `run` starting on the worker, and from `run` ending to the result at the orchestrator. */
  const overheads: { dispatchToStartP50Ms: number; endToResultP50Ms: number }[] = [];
  const once = async (durationHints: boolean): Promise<number> => {
    const timings = await cluster.run({ durationHints });
    if (timings.status !== 'Successful') throw new Error(`the schedule pipeline ended ${timings.status}`);
    workOverruns.push(sum(timings.modules.map((module) => module.durationMs)) / totalWork);
    const legs = timings.modules.map((module) => ({
      out: module.workerStart - module.dispatched,
      back: module.finished - module.workerStart - module.durationMs * 1_000,
    }));
    overheads.push({
      dispatchToStartP50Ms:
        percentile(
          legs.map((leg) => leg.out),
          50,
        ) / 1_000,
      endToResultP50Ms:
        percentile(
          legs.map((leg) => leg.back),
          50,
        ) / 1_000,
    });
    return timings.makespanMs;
  };
  try {
    if (config.warmup) await once(false);
    for (let run = 0; run < config.runs; run++) {
      // A first run (no durations known), then a run with that run's durations as hints.
      makespans.push(await once(false));
      hintedMakespans.push(await once(true));
    }
  } finally {
    await cluster.stop();
  }
  const { size, minMs, maxMs, seed } = config.spec;
  const benchmark = `3 schedule, ${size}-module DAG`;
  const label = 'lower bound';
  const rows: Row[] = [
    {
      benchmark,
      metric: `makespan, durations known (--timings) (${minMs}-${maxMs} ms modules, seed ${seed}, ${config.workers} workers x ${config.slots} slots)`,
      unit: 'ms',
      value: median(hintedMakespans),
      runs: hintedMakespans,
      baseline: lowerBound,
      baselineLabel: label,
      target: { on: 'ratio', kind: 'max', limit: 1.1 },
    },
    {
      benchmark,
      metric: 'makespan, first run (no durations known: longest chain in modules first)',
      unit: 'ms',
      value: median(makespans),
      runs: makespans,
      baseline: lowerBound,
      baselineLabel: label,
    },
    {
      benchmark,
      metric: "the modules' run time as the workers measured it (sleeps overrun, timers fire late)",
      unit: 'ms',
      value: median(workOverruns) * totalWork,
      baseline: totalWork,
      baselineLabel: 'time asked',
    },
    {
      benchmark,
      metric: 'ideal list schedule, longest chain in modules first (simulated, no overhead)',
      unit: 'ms',
      value: inSchedulerOrder,
      baseline: lowerBound,
      baselineLabel: label,
    },
    {
      benchmark,
      metric: 'ideal list schedule in pipeline order (simulated)',
      unit: 'ms',
      value: inPipelineOrder,
      baseline: lowerBound,
      baselineLabel: label,
    },
    {
      benchmark,
      metric: 'ideal list schedule, longest path first (simulated)',
      unit: 'ms',
      value: longestPathFirst,
      baseline: lowerBound,
      baselineLabel: label,
    },
  ];
  return {
    rows,
    details: {
      config,
      criticalPathMs: criticalPath,
      totalWorkMs: totalWork,
      lowerBoundMs: lowerBound,
      makespans,
      hintedMakespans,
      workOverruns,
      overheads,
    },
  };
}
