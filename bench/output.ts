/**
 * Benchmark 5: the cost of module output. One worker (1 slot, modules in module hosts) and the
 * orchestrator taking the modules' output into log files (`executionLogs`, `logsDir`), as the
 * CLI does. The module `loud` starts a command writing `lines` lines of 100 characters through
 * `ctx.spawn` (the worker captures, masks and ships every line); its baseline, in the same run,
 * is `quiet`: the same command with its stdout sent to /dev/null. An extra baseline, `read`:
 * the same command started with Node's own `child_process.spawn`, the module reading its stdout
 * to the end as `loud` does but nothing captured — `loud / read` isolates what capture costs,
 * `read / quiet` what the module's own read of the stream costs (`loud / quiet` charges both).
 * Another, `inherit`: the command's stdout inherited (the module does not read it), which goes
 * straight where the worker reads, captured all the same (round H: with `--isolation none` too).
 * Runs alternate between the categories (loud first, then loud last). Per run: the module's
 * time as the orchestrator saw it (dispatched → result in), the run's makespan (the run waits
 * for the module's last output batch before it ends), the peak RSS of the orchestrator, the
 * worker and its module host (summed /proc VmRSS, sampled every 25 ms). Every loud run's log
 * must hold every line, in order: the log is read back line by line against what the command
 * wrote.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunTimings } from './servers/orchestrator.js';
import { outputLine } from './lib/output-lines.js';
import { BenchProcess, benchPath, processCpuMs, startBenchOrchestrator, startWorkerCli } from './lib/processes.js';
import { type Row, rowsOf } from './lib/report.js';
import { childPids, MB, RssSampler, type RssFigures } from './lib/rss.js';

export interface OutputConfig {
  /** Lines the module writes (100 characters and a newline each). */
  lines: number;
  runs: number;
  /** A first run of each, not counted (it starts the module host). */
  warmup: boolean;
}

export const OUTPUT_FULL: OutputConfig = {
  lines: 200_000,
  runs: Number(process.env.MPD_BENCH_OUTPUT_RUNS ?? 3),
  warmup: true,
};
export const OUTPUT_SMOKE: OutputConfig = { lines: 2_000, runs: 1, warmup: false };

const PIPELINE = benchPath('pipelines/output.pipeline.ts');
/** How long a run waits for a module's last output batch (the runner's `outputGraceMs`, 2 s by default). */
const OUTPUT_GRACE_MS = 300_000;

interface OutputRun {
  /** Dispatched → result in at the orchestrator, ms. */
  moduleMs: number;
  /** The command's own time in the module, ms. */
  commandMs: number;
  /** The run's makespan (its last output batch included), ms. */
  makespanMs: number;
  /** How many of the loud module's lines reached its log, the first ones all in order. */
  linesInOrder: number;
  /** How many stdout lines its log holds. */
  linesInLog: number;
  rss: Record<string, RssFigures>;
  /** CPU time each process used during the run (its own, children not counted), ms. */
  cpuMs: Record<'orchestrator' | 'worker' | 'host', number>;
}

/**
 * Reads an attempt's log (`<time> <stream> <level> <text>` per line): how many stdout lines it
 * holds, and how many of the first ones are `outputLine(0)`, `outputLine(1)`, … in that order.
 */
export function checkLog(file: string): { lines: number; inOrder: number } {
  let lines = 0;
  let inOrder = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const first = line.indexOf(' ');
    const second = line.indexOf(' ', first + 1);
    const third = line.indexOf(' ', second + 1);
    if (third < 0 || line.slice(first + 1, second) !== 'stdout') continue;
    if (inOrder === lines && line.slice(third + 1) === outputLine(lines)) inOrder++;
    lines++;
  }
  return { lines, inOrder };
}

export async function outputBench(config: OutputConfig): Promise<{ rows: Row[]; details: unknown }> {
  const dir = mkdtempSync(join(tmpdir(), 'mpd-bench-output-'));
  const env = { MPD_BENCH_OUTPUT_LINES: String(config.lines) };
  const orchestrator = startBenchOrchestrator(PIPELINE, {
    ...env,
    MPD_BENCH_LOGS_DIR: join(dir, 'logs'),
    // The runner waits 2 s by default for an execution's last output batch, then drops the rest:
    // long enough here to see when every line is in (the makespan), and so whether they all come.
    MPD_BENCH_OUTPUT_GRACE_MS: String(OUTPUT_GRACE_MS),
    MPD_BENCH_ARTIFACTS_DIR: join(dir, 'store'),
  });
  let worker: BenchProcess | undefined;
  try {
    const url = await orchestrator.listeningUrl(60_000);
    worker = startWorkerCli({
      id: 'bench-output-worker',
      orchestratorUrl: url,
      slots: 1,
      env,
      pipeline: PIPELINE,
      ...(process.env.MPD_BENCH_OUTPUT_ISOLATION === 'none' ? { isolation: 'none' as const } : {}),
    });
    await worker.listeningUrl(60_000);
    const hostPids = (): number[] => childPids(worker!.pid);
    const once = async (category: 'loud' | 'quiet' | 'inherit' | 'read'): Promise<OutputRun> => {
      const sampler = new RssSampler({
        orchestrator: () => [orchestrator.pid],
        worker: () => [worker!.pid],
        host: hostPids,
      }).start();
      let timings: RunTimings;
      let rss: Record<string, RssFigures>;
      const cpu = (): OutputRun['cpuMs'] => ({
        orchestrator: processCpuMs(orchestrator.pid),
        worker: processCpuMs(worker!.pid),
        host: hostPids().reduce((total, pid) => total + processCpuMs(pid), 0),
      });
      const cpuBefore = cpu();
      try {
        timings = await orchestrator.request<RunTimings>('run', { minWorkers: 1, categories: [category] });
      } finally {
        rss = sampler.stop();
      }
      const cpuAfter = cpu();
      const cpuMs = {
        orchestrator: cpuAfter.orchestrator - cpuBefore.orchestrator,
        worker: cpuAfter.worker - cpuBefore.worker,
        host: cpuAfter.host - cpuBefore.host,
      };
      if (timings.status !== 'Successful') throw new Error(`the ${category} run ended ${timings.status}`);
      const module = timings.modules.find((each) => each.name === category)!;
      // Every line must be in the log, in order; the row below says how many were.
      const log = category !== 'quiet' && module.log ? checkLog(module.log) : undefined;
      return {
        moduleMs: (module.finished - module.dispatched) / 1_000,
        commandMs: (module.result as { ms: number }).ms,
        makespanMs: timings.makespanMs,
        linesInOrder: log?.inOrder ?? 0,
        linesInLog: log?.lines ?? 0,
        rss,
        cpuMs,
      };
    };
    // A first run of each starts the module host and warms both paths up.
    if (config.warmup) {
      await once('quiet');
      await once('loud');
      await once('read');
    }
    const loud: OutputRun[] = [];
    const quiet: OutputRun[] = [];
    // The module reads its command's stdout as `loud` does, through Node's own spawn: nothing captured.
    const read: OutputRun[] = [];
    // An extra variant: the module does not read the command's stdout (`stdio: 'inherit'`), which
    // goes straight where the worker reads: in a module host, the host's stdout itself (no read or
    // copy in the host); with `--isolation none`, a pipe the worker reads (no stream for the module).
    const inherit: OutputRun[] = [];
    if (config.warmup) await once('inherit');
    for (let run = 0; run < config.runs; run++) {
      if (run % 2 === 0) {
        loud.push(await once('loud'));
        read.push(await once('read'));
        quiet.push(await once('quiet'));
        inherit.push(await once('inherit'));
      } else {
        inherit.push(await once('inherit'));
        quiet.push(await once('quiet'));
        read.push(await once('read'));
        loud.push(await once('loud'));
      }
    }
    const megabytes = ((config.lines * 101) / MB).toFixed(1);
    const benchmark = `5 module output, ${config.lines.toLocaleString('en-US')} lines (${megabytes} MiB)`;
    const label = 'output discarded';
    const row = rowsOf(benchmark, loud, quiet, label);
    const peak = (group: string) => (run: OutputRun) => run.rss[group]!.peak / MB;
    const rows: Row[] = [
      row('module time (dispatched -> result at the orchestrator)', 'ms', (run) => run.moduleMs, {
        on: 'ratio',
        kind: 'max',
        limit: 1.1,
      }),
      row("the command's own time in the module", 'ms', (run) => run.commandMs),
      row('run makespan: until every line is in at the orchestrator', 'ms', (run) => run.makespanMs, {
        on: 'ratio',
        kind: 'max',
        limit: 1.1,
      }),
      {
        benchmark,
        metric: 'lines in the log in order from the first (worst run)',
        unit: 'lines',
        value: Math.min(...loud.map((run) => run.linesInOrder)),
        runs: loud.map((run) => run.linesInOrder),
        baseline: config.lines,
        baselineLabel: 'lines written',
        target: { on: 'ratio', kind: 'min', limit: 1 },
      },
      row('CPU time in the run: orchestrator', 'ms', (run) => run.cpuMs.orchestrator),
      row('CPU time in the run: worker', 'ms', (run) => run.cpuMs.worker),
      row('CPU time in the run: module host (its commands not counted)', 'ms', (run) => run.cpuMs.host),
      row('peak RSS: orchestrator', 'MB', peak('orchestrator')),
      row('peak RSS: worker', 'MB', peak('worker')),
      row('peak RSS: module host', 'MB', peak('host')),
    ];
    // Capture alone: `loud` against `read` (both read the stream in the module; only `loud`'s
    // lines are captured and shipped), and the module's own read: `read` against `quiet`.
    const captureOnly = rowsOf(
      `${benchmark}, extra: capture alone (loud / read)`,
      loud,
      read,
      'module reads the stream, nothing captured',
    );
    const readOnly = rowsOf(`${benchmark}, extra: the module's own read (read / quiet)`, read, quiet, label);
    rows.push(
      captureOnly('module time (dispatched -> result at the orchestrator)', 'ms', (run) => run.moduleMs),
      captureOnly('run makespan: until every line is in at the orchestrator', 'ms', (run) => run.makespanMs),
      captureOnly('CPU time in the run: worker', 'ms', (run) => run.cpuMs.worker),
      captureOnly('CPU time in the run: module host (its commands not counted)', 'ms', (run) => run.cpuMs.host),
      readOnly('module time (dispatched -> result at the orchestrator)', 'ms', (run) => run.moduleMs),
      readOnly('run makespan: until every line is in at the orchestrator', 'ms', (run) => run.makespanMs),
      {
        benchmark: `${benchmark}, extra: the module's own read (read / quiet)`,
        metric: 'stdout lines in the log (none expected: nothing captured; worst run)',
        unit: 'lines',
        value: Math.max(...read.map((run) => run.linesInLog)),
        runs: read.map((run) => run.linesInLog),
      },
    );
    const extra = rowsOf(
      `${benchmark}, extra: the command's stdout inherited, not read by the module (loud's direct path)`,
      inherit,
      quiet,
      label,
    );
    rows.push(
      extra('module time (dispatched -> result at the orchestrator)', 'ms', (run) => run.moduleMs),
      extra('run makespan: until every line is in at the orchestrator', 'ms', (run) => run.makespanMs),
      {
        benchmark: `${benchmark}, extra: the command's stdout inherited, not read by the module (loud's direct path)`,
        metric: 'lines in the log in order from the first (worst run)',
        unit: 'lines',
        value: Math.min(...inherit.map((run) => run.linesInOrder)),
        runs: inherit.map((run) => run.linesInOrder),
        baseline: config.lines,
        baselineLabel: 'lines written',
      },
    );
    return { rows, details: { config, loud, quiet, read, inherit } };
  } finally {
    await Promise.all([worker?.stop(), orchestrator.stop()]);
    if (!process.env.MPD_BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
  }
}
