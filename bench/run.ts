/**
 * `pnpm bench`: runs the benchmarks, prints a table (benchmark, metric, value, baseline,
 * ratio, target, met?) and writes `bench/results.json` with the machine's details.
 * `pnpm bench:smoke` (`--smoke`) runs every benchmark at tiny sizes, once, without judging
 * the targets (CI runs it so that the script cannot rot). `--only NAME[,NAME]` runs some:
 * heartbeat, dispatch, schedule, scale, output, artifacts, route, floor, own-code, progress-write. `--cpu-prof` writes a CPU profile of every process the
 * bench starts to `bench/profiles/` (summarise one with `tsx bench/profile-summary.ts FILE`).
 */
import { DISPATCH_FULL, DISPATCH_SMOKE, dispatchBench } from './dispatch.js';
import { FLOOR_FULL, FLOOR_SMOKE, floorBench } from './floor.js';
import { ARTIFACTS_FULL, ARTIFACTS_SMOKE, artifactsBench } from './artifacts.js';
import { heartbeatBench, HEARTBEAT_FULL, HEARTBEAT_SMOKE } from './heartbeat.js';
import { OUTPUT_FULL, OUTPUT_SMOKE, outputBench } from './output.js';
import { OWN_CODE_FULL, OWN_CODE_SMOKE, ownCodeBench } from './own-code.js';
import { PROGRESS_WRITE_FULL, PROGRESS_WRITE_SMOKE, progressWriteBench } from './progress-write.js';
import { ROUTE_FULL, ROUTE_SMOKE, routeBench } from './route.js';
import { SCALE_FULL, SCALE_SMOKE, scaleBench } from './scale.js';
import { SCHEDULE_FULL, SCHEDULE_SMOKE, scheduleBench } from './schedule.js';
import { loadavg } from 'node:os';
import { killAll, benchPath } from './lib/processes.js';
import { evaluate, formatSpread, formatTable, machine, type Row, type RowResult, writeResults } from './lib/report.js';

const args = process.argv.slice(2);
const smoke = args.includes('--smoke');
const onlyIndex = args.indexOf('--only');
const only = onlyIndex >= 0 ? new Set((args[onlyIndex + 1] ?? '').split(',')) : undefined;
if (args.includes('--cpu-prof')) process.env.MPD_BENCH_CPU_PROF_DIR = benchPath('profiles');

const benches: { name: string; run: () => Promise<{ rows: Row[]; details: unknown }> }[] = [
  { name: 'heartbeat', run: () => heartbeatBench(smoke ? HEARTBEAT_SMOKE : HEARTBEAT_FULL) },
  { name: 'dispatch', run: () => dispatchBench(smoke ? DISPATCH_SMOKE : DISPATCH_FULL) },
  { name: 'schedule', run: () => scheduleBench(smoke ? SCHEDULE_SMOKE : SCHEDULE_FULL) },
  { name: 'scale', run: () => scaleBench(smoke ? SCALE_SMOKE : SCALE_FULL) },
  { name: 'output', run: () => outputBench(smoke ? OUTPUT_SMOKE : OUTPUT_FULL) },
  { name: 'artifacts', run: () => artifactsBench(smoke ? ARTIFACTS_SMOKE : ARTIFACTS_FULL) },
  { name: 'route', run: () => routeBench(smoke ? ROUTE_SMOKE : ROUTE_FULL) },
  { name: 'floor', run: () => floorBench(smoke ? FLOOR_SMOKE : FLOOR_FULL) },
  { name: 'own-code', run: () => ownCodeBench(smoke ? OWN_CODE_SMOKE : OWN_CODE_FULL) },
  {
    name: 'progress-write',
    run: () => progressWriteBench(smoke ? PROGRESS_WRITE_SMOKE : PROGRESS_WRITE_FULL),
  },
];

const NOTES = [
  "Every server is a real process on 127.0.0.1 (workers: the worker CLI; orchestrator: bench/servers/orchestrator.ts calling startOrchestrator and runPipeline); load generators run in the driver process: autocannon for benchmark 1 (closed loop, as fast as the server answers), an evenly paced open-loop load on undici for benchmark 4 (autocannon's overallRate sends each connection's quota for a second in one burst).",
  'The orchestrator has a join token and an admin token (authentication on) and its rate limits raised to 1e9 per minute, so that the load generators are not throttled: the defaults allow 600 heartbeats per worker and minute, 10,000 registrations per address and minute, and every simulated worker comes from 127.0.0.1.',
  'The orchestrator and the workers log at info on stderr, as the CLIs do by default.',
  "Benchmarks 5 and 6 read RSS from /proc (VmRSS, every 25 ms): a worker's module hosts are its child processes; growth is the peak minus the first sample.",
  "Benchmark 2's peer (issue 14): BullMQ 6.7 with ioredis 6 on Debian's Redis 7 (started by the bench on a free loopback port, persistence off, installed with apt-get when missing and run as root), a driver process adding the jobs and learning of completions through QueueEvents, and as many BullMQ worker processes as mpd has workers, each with mpd's slots as its concurrency; no-op jobs, each run on a fresh queue. On the wide shape also BullMQ with sandboxed processors (its own isolation: a processor file run in child processes of each worker, useWorkerThreads false, the pool filled before the run), the peer closest to mpd's module hosts, shown beside but not judged.",
  'Values are medians over the runs; each baseline is measured in the same run of the bench.',
];

process.on('SIGINT', () => {
  killAll();
  process.exit(130);
});
process.on('SIGTERM', () => {
  killAll();
  process.exit(143);
});

async function main(): Promise<number> {
  const started = performance.now();
  const info = machine();
  if (info.loadAverage[0]! > 0.5) {
    process.stdout.write(
      `warning: the machine is busy (load average ${info.loadAverage.map((load) => load.toFixed(2)).join(', ')}): figures will be noisy\n`,
    );
  }
  process.stdout.write(
    `mpd benchmarks${smoke ? ' (smoke: tiny sizes, targets not judged)' : ''}: ${info.cpuModel} x${info.cpuCount}, ${info.os}, node ${info.node}\n`,
  );
  const rows: RowResult[] = [];
  const details: Record<string, unknown> = {};
  const failures: string[] = [];
  for (const bench of benches) {
    if (only && !only.has(bench.name)) continue;
    const benchStarted = performance.now();
    process.stdout.write(`… ${bench.name}\n`);
    try {
      const result = await bench.run();
      details[bench.name] = result.details;
      for (const row of result.rows) rows.push(evaluate(smoke ? { ...row, target: undefined } : row));
      process.stdout.write(`  done in ${((performance.now() - benchStarted) / 1000).toFixed(1)} s\n`);
    } catch (error) {
      // Report it and go on with the other benchmarks; the run then exits 1.
      killAll();
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      failures.push(`${bench.name}: ${message}`);
      details[bench.name] = { error: message };
      process.stdout.write(`  FAILED: ${message.split('\n')[0]}\n`);
    }
  }
  process.stdout.write(`\n${formatTable(rows)}\n\n`);
  const spread = formatSpread(rows);
  if (spread) process.stdout.write(`${spread}\n\n`);
  for (const note of NOTES) process.stdout.write(`- ${note}\n`);
  const file = benchPath('results.json');
  writeResults(file, {
    machine: { ...info, loadAverageAtEnd: loadavg() },
    smoke,
    notes: NOTES,
    rows,
    details,
  });
  for (const failure of failures) process.stderr.write(`\nbenchmark failed: ${failure}\n`);
  const missed = rows.filter((row) => row.met === false).length;
  process.stdout.write(
    `\n${smoke ? 'smoke run' : `${rows.filter((row) => row.met === true).length} target(s) met, ${missed} missed`}; results in bench/results.json (${((performance.now() - started) / 1000).toFixed(0)} s)\n`,
  );
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    killAll();
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
