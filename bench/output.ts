/**
 * Benchmark 5: the cost of module output. One worker (1 slot, modules in module hosts) and the
 * orchestrator taking the modules' output into log files (`executionLogs`, `logsDir`), as the
 * CLI does. Issue 13: "a module writing 200,000 lines (about 20 MB) finishes within 1.10 × the
 * time of the same module with its output discarded". Judged (round H, the lead's decision):
 * `inherit / quiet` — the same module starting the same command through `ctx.spawn`, only the
 * command's stdout differs: `inherit` gives it an inherited stdout (`stdio: 'inherit'`, the
 * README's way for a tool that prints a lot: not read by the module, captured all the same,
 * straight where the worker reads), `quiet` sends it to /dev/null (`stdio: 'ignore'`).
 * Printed, not judged: `loud / quiet` (the judged row until round H), where `loud` gives the
 * command a `'pipe'` stdout that the module reads to its end (captured too: the bytes pass through
 * the module's process, a different module from `quiet`, which has no stream to read); `read`:
 * the same command started with Node's own `child_process.spawn`, the module reading its stdout
 * to the end as `loud` does but nothing captured — `loud / read` isolates what capture of a read
 * stream costs, `read / quiet` what the module's own read of the stream costs.
 * Runs alternate between the categories (loud first, then loud last), so the judged two run side
 * by side in every run, `quiet` first in even runs and `inherit` first in odd ones. The judged
 * figure is the ratio of the two medians; printed beside it, with their spread, each run's own
 * ratio (`inherit` over the `quiet` beside it). Per run: the module's
 * time as the orchestrator saw it (dispatched → result in), the run's makespan (the run waits
 * for the module's last output batch before it ends), the peak RSS of the orchestrator, the
 * worker and its module host (summed /proc VmRSS, sampled every 25 ms). Every captured run's log
 * (`inherit`, `loud`) must hold every line, in order: the log is read back line by line against
 * what the command wrote.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunTimings } from './servers/orchestrator.js';
import { outputLine } from './lib/output-lines.js';
import { BenchProcess, benchPath, processCpuMs, startBenchOrchestrator, startWorkerCli } from './lib/processes.js';
import { type Row, rowsOf } from './lib/report.js';
import { MB, RssSampler, type RssFigures } from './lib/rss.js';
import { liveChildren } from './lib/proc-times.js';
import { median } from './lib/stats.js';

export interface OutputConfig {
  /** Lines the module writes (100 characters and a newline each). */
  lines: number;
  runs: number;
  /** A first run of each, not counted (it starts the module host). */
  warmup: boolean;
}

/**
 * `MPD_BENCH_OUTPUT_RUNS` overrides the runs (21 by default, round J: 3–5 runs moved the judged
 * ratio by up to 0.4 between bench runs; each run of the four variants takes about 3 s, so about
 * 70 s in all).
 */
export const OUTPUT_FULL: OutputConfig = {
  lines: 200_000,
  runs: Number(process.env.MPD_BENCH_OUTPUT_RUNS ?? 21),
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
      // The worker's --output-buffer-size (e.g. `64mb`: a run's 20 MB kept in memory, no spill file).
      ...(process.env.MPD_BENCH_OUTPUT_BUFFER_SIZE
        ? { extraArgs: ['--output-buffer-size', process.env.MPD_BENCH_OUTPUT_BUFFER_SIZE] }
        : {}),
    });
    await worker.listeningUrl(60_000);
    const hostPids = (): number[] => liveChildren(worker!.pid);
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
    // The judged one: the module does not read the command's stdout (`stdio: 'inherit'`), which
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
    // Judged: the same module, its command's stdout inherited (captured) against discarded.
    const row = rowsOf(benchmark, inherit, quiet, label);
    const peak = (group: string) => (run: OutputRun) => run.rss[group]!.peak / MB;
    const inOrder = (name: string, runs: OutputRun[], judged: boolean): Row => ({
      benchmark: name,
      metric: 'lines in the log in order from the first (worst run)',
      unit: 'lines',
      value: Math.min(...runs.map((run) => run.linesInOrder)),
      runs: runs.map((run) => run.linesInOrder),
      baseline: config.lines,
      baselineLabel: 'lines written',
      ...(judged ? { target: { on: 'ratio', kind: 'min', limit: 1 } as const } : {}),
    });
    const paired = inherit.map((run, index) => run.moduleMs / quiet[index]!.moduleMs);
    const rows: Row[] = [
      {
        ...row('module time (dispatched -> result at the orchestrator)', 'ms', (run) => run.moduleMs, {
          on: 'ratio',
          kind: 'max',
          limit: 1.1,
        }),
        spread: true,
      },
      {
        benchmark,
        metric: 'module time, inherit / quiet per run (each over the quiet run beside it; not judged)',
        unit: 'x',
        value: median(paired),
        runs: paired,
        spread: true,
        spreadLimit: { kind: 'max', limit: 1.1 },
      },
      row("the command's own time in the module", 'ms', (run) => run.commandMs),
      row('run makespan: until every line is in at the orchestrator', 'ms', (run) => run.makespanMs, {
        on: 'ratio',
        kind: 'max',
        limit: 1.1,
      }),
      inOrder(benchmark, inherit, true),
      row('CPU time in the run: orchestrator', 'ms', (run) => run.cpuMs.orchestrator),
      row('CPU time in the run: worker', 'ms', (run) => run.cpuMs.worker),
      row('CPU time in the run: module host (its commands not counted)', 'ms', (run) => run.cpuMs.host),
      row('peak RSS: orchestrator', 'MB', peak('orchestrator')),
      row('peak RSS: worker', 'MB', peak('worker')),
      row('peak RSS: module host', 'MB', peak('host')),
    ];
    // Not judged: the module reads its command's stream and has it captured too (`loud`), against
    // the command's output discarded (the judged row until round H: not the same module, `quiet`
    // has no stream to read), against the module reading it with nothing captured (capture of a
    // read stream alone), and the module's own read: `read` against `quiet`.
    const loudName = `${benchmark}, extra: the module reads its command's stream, captured (loud / quiet)`;
    const loudOnly = rowsOf(loudName, loud, quiet, label);
    const captureOnly = rowsOf(
      `${benchmark}, extra: capture of a read stream alone (loud / read)`,
      loud,
      read,
      'module reads the stream, nothing captured',
    );
    const readOnly = rowsOf(`${benchmark}, extra: the module's own read (read / quiet)`, read, quiet, label);
    rows.push(
      loudOnly('module time (dispatched -> result at the orchestrator)', 'ms', (run) => run.moduleMs),
      loudOnly('run makespan: until every line is in at the orchestrator', 'ms', (run) => run.makespanMs),
      inOrder(loudName, loud, false),
      loudOnly('CPU time in the run: worker', 'ms', (run) => run.cpuMs.worker),
      loudOnly('CPU time in the run: module host (its commands not counted)', 'ms', (run) => run.cpuMs.host),
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
    return { rows, details: { config, loud, quiet, read, inherit } };
  } finally {
    await Promise.all([worker?.stop(), orchestrator.stop()]);
    if (!process.env.MPD_BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
  }
}
