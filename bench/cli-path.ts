import { basename } from 'node:path';
/**
 * Benchmark 2 as users run it (issue 14): `mpd orchestrator --pipeline FILE --min-workers 2`
 * and two `mpd worker --pipeline FILE` processes, with their default logging and progress
 * output (read by the bench through pipes, as a CI job's log reads them). Per module, from two
 * runs of fresh processes, one of `size` modules and one of {@link SMALL} (what starting,
 * registering and stopping cost cancels out):
 * - modules/s: (size − SMALL) / the difference of the orchestrator's own reported run times
 *   (`--report`, `durationMs`);
 * - CPU per module of every process (orchestrator, workers, module hosts): the difference of
 *   the CPU those processes used over their whole lives, / (size − SMALL). Read from this
 *   process's `/proc/self/stat` (cutime + cstime: the CPU of reaped children, theirs included),
 *   so it is exact once they exited.
 * That judged figure (issue 14 measures it so) carries what fresh processes pay while they warm
 * up (V8's tiering and lazy compilation, heap growth) over their first modules. With a
 * `warmSize`, a third run of fresh processes, of `warmSize` modules, gives the **warm** figure:
 * the same differences between it and the `size` run, / (warmSize − size): what one more module
 * costs processes that are already warm (BullMQ is measured the same way: bench/peer.ts
 * `freshRuns`).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliOf } from '@mpd/test-kit';
import { dagEnv, type Shape } from './lib/dag.js';
import {
  BENCH_PIPELINE,
  BenchProcess,
  clockTicks,
  descendantsCpuMs,
  JOIN_TOKEN,
  liveChildren,
  processTimes,
} from './lib/processes.js';

/**
 * The command name (`/proc/PID/comm`, at most 15 characters) a module host runs under: the workers'
 * own Node binary's name (Debian's `nodejs` as well as `node`), which the hosts inherit.
 */
const HOST_COMMAND = basename(process.execPath).slice(0, 15);

/** The small run whose figures are subtracted. */
export const SMALL = 10;

/** The `mpd` CLI the bench runs, and the pipeline file it loads (another checkout's, to compare). */
export interface CliUnderTest {
  /** The `mpd` entry script. */
  mpd: string;
  pipeline: string;
}

/** This checkout's `mpd` and bench pipeline. */
export const THIS_CLI: CliUnderTest = { mpd: cliOf('mpd'), pipeline: BENCH_PIPELINE };

/** CPU time of this process's reaped children (and theirs), ms, from /proc/self/stat. */
function reapedChildrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // cutime and cstime are fields 16 and 17 of stat: 14 and 15 after the command name; in clock ticks.
  return ((Number(fields[13]) + Number(fields[14])) / clockTicks()) * 1_000;
}

/** One run through the CLIs on fresh processes: the orchestrator's reported duration and every process's CPU, ms. */
async function once(
  shape: Extract<Shape, 'wide' | 'chain'>,
  size: number,
  workers: number,
  slots: number,
  cli: CliUnderTest,
): Promise<{ durationMs: number; cpuMs: number; split: CpuSplit; hosts: HostsAtEnd }> {
  const dir = mkdtempSync(join(tmpdir(), 'mpd-bench-cli-'));
  const env = { ...dagEnv({ shape, size, seed: 1, minMs: 0, maxMs: 0 }), MPD_JOIN_TOKEN: JOIN_TOKEN };
  const report = join(dir, 'report.json');
  const before = reapedChildrenCpuMs();
  const orchestrator = new BenchProcess(
    'cli-orchestrator',
    cli.mpd,
    [
      ...['orchestrator', '--pipeline', cli.pipeline, '--min-workers', String(workers)],
      ...['--port', '0', '--host', '127.0.0.1', '--report', report, '--logs-dir', join(dir, 'logs')],
      ...['--artifacts-dir', join(dir, 'store')],
    ],
    env,
  );
  const started: BenchProcess[] = [];
  try {
    const url = await orchestrator.listeningUrl(60_000);
    for (let index = 0; index < workers; index++) {
      started.push(
        new BenchProcess(
          `cli-worker-${index + 1}`,
          cli.mpd,
          [
            ...['worker', '--pipeline', cli.pipeline, '--orchestrator', url, '--id', `cli-worker-${index + 1}`],
            ...[
              '--port',
              '0',
              '--host',
              '127.0.0.1',
              '--slots',
              String(slots),
              '--cache-dir',
              join(dir, `cache-${index}`),
            ],
          ],
          env,
        ),
      );
    }
    // Each worker registers once its pool's hosts are ready (they loaded the pipeline): its CPU
    // and its hosts' until then are their start. The orchestrator starts the run once both
    // registered: its CPU read then is its start (see CpuSplit's `…Start` fields).
    const workerStarts = await Promise.all(
      started.map(async (worker) => {
        try {
          await worker.outputMatch(/registered with the orchestrator/, 'register', 60_000);
        } catch (error) {
          // What the orchestrator said may tell why (refused the worker, exited).
          const said = `${(error as Error).message}\nthe orchestrator's recent output:\n${orchestrator.recentOutput()}`;
          throw new Error(said, { cause: error });
        }
        return { hosts: descendantsCpuMs(worker.pid), own: worker.cpuMs() };
      }),
    );
    const orchestratorStart = orchestrator.cpuMs({ children: true });
    const code = await orchestrator.exited;
    // The orchestrator is reaped; the workers still live: the split of the CPU (see CpuSplit).
    const orchestratorMs = reapedChildrenCpuMs() - before;
    let workersMs = 0;
    let hostsMs = 0;
    const hosts: HostsAtEnd = { live: 0, others: {}, exitedMs: 0, rssMb: 0, peakRssMb: 0 };
    for (const worker of started) {
      workersMs += worker.cpuMs();
      hostsMs += descendantsCpuMs(worker.pid);
      hosts.exitedMs += processTimes(worker.pid)?.reapedMs ?? Number.NaN;
      for (const host of liveChildren(worker.pid)) {
        const command = commandOf(host);
        if (command !== HOST_COMMAND) {
          // Not a host: esbuild's service, which tsx started to compile a file not in its cache (see warmUp).
          hosts.others[command] = (hosts.others[command] ?? 0) + 1;
          continue;
        }
        const memory = memoryOf(host);
        hosts.live++;
        hosts.rssMb += memory.rssMb;
        hosts.peakRssMb += memory.peakRssMb;
      }
    }
    if (code !== 0) throw new Error(`mpd orchestrator exited ${code}:\n${orchestrator.recentOutput()}`);
    const { durationMs, status } = JSON.parse(readFileSync(report, 'utf8')) as { durationMs: number; status: string };
    if (status !== 'Successful') throw new Error(`the CLI run ended ${status}`);
    await Promise.all(started.map((worker) => worker.stop(30_000)));
    return {
      durationMs,
      cpuMs: reapedChildrenCpuMs() - before,
      split: {
        orchestrator: orchestratorMs,
        workers: workersMs,
        hosts: hostsMs,
        orchestratorStart,
        workerStarts: workerStarts.reduce((total, start) => total + start.own, 0),
        hostStarts: workerStarts.reduce((total, start) => total + start.hosts, 0),
      },
      hosts,
    };
  } finally {
    await Promise.all([orchestrator.stop(), ...started.map((worker) => worker.stop())]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * CPU by process, ms, read when the orchestrator exited (the run's end), before the workers are
 * stopped: the orchestrator over its whole life; the worker processes' own CPU; and their
 * module hosts' (every descendant of the workers) over their whole lives, those that exited
 * during the run included (the workers reaped them: /proc's cutime + cstime), read so that a
 * host exiting during the read is counted once (`descendantsCpuMs`). What the workers and
 * their hosts spend stopping is in `cpuMs` only.
 */
export interface CpuSplit {
  orchestrator: number;
  workers: number;
  hosts: number;
  /**
   * The part of `hosts` spent before their worker registered (the worker waits for its hosts to
   * be ready: they started and loaded the pipeline, whose size is the run's). Per module, start-up
   * cancels out of the judged figure but for the pipeline's size, and its noise (hosts' starts
   * vary by ±1 s of CPU between runs on a loaded machine) is what made the hosts' judged share
   * swing, even negative: `hosts − hostStarts` is the hosts' CPU in the run itself. Under load it
   * may include some of the run's CPU: each worker's is read after its registered line is seen,
   * and the orchestrator starts the run as soon as the second worker registered, so the first
   * modules may run in the hosts before the second worker's figure is read.
   */
  hostStarts: number;
  /**
   * The part of `workers` spent before each worker registered (read as `hostStarts` is): the
   * process's start, tsx, its sources and the pipeline loaded, its pool of hosts started.
   */
  workerStarts: number;
  /**
   * The part of `orchestrator` spent before the run started, read once both workers registered
   * (the orchestrator starts the run then: under load, the first modules' CPU may be in it, as
   * for `hostStarts`): its start, tsx, its sources and the pipeline loaded, the registrations.
   */
  orchestratorStart: number;
}

/**
 * A run's CPU without what its processes spent starting (their `…Start` fields), ms: what every
 * process spent from the run's start to the orchestrator's exit (the workers and hosts: to that
 * moment). Per module (a difference of two runs), it leaves out the start-up of the 19 processes
 * (each a fresh `node` with tsx, about 0.25 s of CPU a host on this 2-core machine, 4–6 s in all a
 * run), whose run-to-run spread under load (±1 s of CPU between two runs of the same tree, round
 * P) is what made the judged figure move by ±0.5–1 ms a module; it also leaves out what start-up
 * costs grow with the pipeline's size (each process loads all of it: about 6–13 µs a module a
 * host, round J, `bench/pipeline-load.ts` measures it apart).
 */
export function runOnly(split: CpuSplit): { orchestrator: number; workers: number; hosts: number; total: number } {
  const orchestrator = split.orchestrator - split.orchestratorStart;
  const workers = split.workers - split.workerStarts;
  const hosts = split.hosts - split.hostStarts;
  return { orchestrator, workers, hosts, total: orchestrator + workers + hosts };
}

/** The workers' module hosts when the orchestrator exited (the run's end). */
export interface HostsAtEnd {
  /** Hosts alive: the workers' live children that are `node` processes (one per slot). */
  live: number;
  /**
   * The workers' other live children, by command name (`/proc/PID/comm`): `esbuild`, the service
   * tsx starts in a worker that compiled a file at its start (not in tsx's cache: see `warmUp`).
   * Counted as hosts before round P: the "18 hosts" of a new worktree's first run.
   */
  others: Record<string, number>;
  /** CPU of hosts that had exited (their worker reaped them), ms: in the hosts' share. 0 when every host lived through the run. */
  exitedMs: number;
  /** The live hosts' resident set sizes (VmRSS), summed, MiB. */
  rssMb: number;
  /** The live hosts' peak resident set sizes (VmHWM), summed, MiB. */
  peakRssMb: number;
}

/** The command name of process `pid` (`/proc/PID/comm`, e.g. `node`, `esbuild`); '' when it is gone. */
function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The resident set size of process `pid` now and its peak, MiB (/proc/PID/status VmRSS, VmHWM); 0 when it is gone. */
function memoryOf(pid: number): { rssMb: number; peakRssMb: number } {
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // gone
  }
  const mb = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) / 1024;
  return { rssMb: mb('VmRSS'), peakRssMb: mb('VmHWM') };
}

/** Per-module figures of a difference of two runs (see the file's comment). */
export interface PerModule<S = CpuSplit> {
  modulesPerSecond: number;
  /** CPU per module, all processes, ms. */
  cpuMs: number;
  /** CPU per module by process, ms. */
  split: S;
}

/** Per-module figures of the CLI path: `size` − {@link SMALL} (judged), and the warm figure when asked for. */
export interface CliFigures extends PerModule {
  /** The hosts at the end of the `size` run and of the {@link SMALL} one. */
  hosts: { size: HostsAtEnd; small: HostsAtEnd };
  /** `warmSize` − `size` modules, fresh processes for each run (see the file's comment), and the hosts at the end of the `warmSize` run. */
  warm?: PerModule & { hosts: HostsAtEnd };
}

/** One run on fresh processes: its modules, its duration and its processes' CPU over their lives, ms, in all and by process. */
export interface RunTotals<S> {
  modules: number;
  durationMs: number;
  cpuMs: number;
  split: S;
}

/** What one more module costs, from a run of `large.modules` and one of `small.modules` of the same kind. */
export function perModule<S extends { [K in keyof S]: number }>(
  large: RunTotals<S>,
  small: RunTotals<S>,
): PerModule<S> {
  const extra = large.modules - small.modules;
  // At smoke sizes the larger run can take no longer than the small one (noise): no rate then
  // (NaN, printed '-'), where a negative one was printed.
  const extraSeconds = (large.durationMs - small.durationMs) / 1_000;
  const split = { ...large.split };
  for (const name of Object.keys(split) as (keyof S)[]) {
    split[name] = ((large.split[name] - small.split[name]) / extra) as S[keyof S];
  }
  return {
    modulesPerSecond: extraSeconds > 0 ? extra / extraSeconds : Number.NaN,
    cpuMs: (large.cpuMs - small.cpuMs) / extra,
    split,
  };
}

/**
 * One run of {@link SMALL} modules through `cli` whose figures are dropped, before the measured
 * ones: it fills tsx's cache of compiled files (`os.tmpdir()/tsx-UID`, one file per source file,
 * keyed by its path and text) for the checkout. A checkout whose files were never run (a new
 * worktree) otherwise has every process of its first measured run compile them all with
 * esbuild: each host and each worker starts esbuild's service process (the workers' show as 18
 * "hosts" at the end instead of 16), and that run's hosts spent about 1.7 s more CPU starting than
 * the next run's (20 modules then 10, a fresh `TMPDIR`, round P): 0.9–1.5 ms more per module in
 * the judged figure of the first 2,000-module run of a new worktree (the lead's hold of
 * 2026-12-02: 7.38 and 5.44 ms, hosts' starts 2.94 and 1.72 ms, against 2.1–3.5 ms after).
 * @returns the hosts at the run's end (their number says whether esbuild ran: see `HostsAtEnd`)
 */
export async function warmUp(
  shape: Extract<Shape, 'wide' | 'chain'>,
  workers: number,
  slots: number,
  cli: CliUnderTest = THIS_CLI,
): Promise<HostsAtEnd> {
  return (await once(shape, SMALL, workers, slots, cli)).hosts;
}

/**
 * A run of `size` and one of {@link SMALL} modules through the CLIs, as one figure; with
 * `warmSize` (larger than `size`), also one of `warmSize` modules: the warm figure.
 */
export async function cliRun(
  shape: Extract<Shape, 'wide' | 'chain'>,
  size: number,
  workers: number,
  slots: number,
  cli: CliUnderTest = THIS_CLI,
  warmSize = 0,
): Promise<CliFigures> {
  const run = async (modules: number) => ({ modules, ...(await once(shape, modules, workers, slots, cli)) });
  const large = await run(size);
  const small = await run(SMALL);
  const figures: CliFigures = { ...perModule(large, small), hosts: { size: large.hosts, small: small.hosts } };
  if (warmSize > size) {
    const warm = await run(warmSize);
    figures.warm = { ...perModule(warm, large), hosts: warm.hosts };
  }
  return figures;
}
