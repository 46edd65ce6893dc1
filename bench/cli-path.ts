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
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliOf } from '@mpd/test-kit';
import { dagEnv, type Shape } from './lib/dag.js';
import { BENCH_PIPELINE, BenchProcess, clockTicks, JOIN_TOKEN } from './lib/processes.js';

/** The small run whose figures are subtracted. */
export const SMALL = 10;

const MPD = cliOf('mpd');

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
): Promise<{ durationMs: number; cpuMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'mpd-bench-cli-'));
  const env = { ...dagEnv({ shape, size, seed: 1, minMs: 0, maxMs: 0 }), MPD_JOIN_TOKEN: JOIN_TOKEN };
  const report = join(dir, 'report.json');
  const before = reapedChildrenCpuMs();
  const orchestrator = new BenchProcess(
    'cli-orchestrator',
    MPD,
    [
      ...['orchestrator', '--pipeline', BENCH_PIPELINE, '--min-workers', String(workers)],
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
          MPD,
          [
            ...['worker', '--pipeline', BENCH_PIPELINE, '--orchestrator', url, '--id', `cli-worker-${index + 1}`],
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
    const code = await orchestrator.exited;
    if (code !== 0) throw new Error(`mpd orchestrator exited ${code}:\n${orchestrator.recentOutput()}`);
    const { durationMs, status } = JSON.parse(readFileSync(report, 'utf8')) as { durationMs: number; status: string };
    if (status !== 'Successful') throw new Error(`the CLI run ended ${status}`);
    await Promise.all(started.map((worker) => worker.stop(30_000)));
    return { durationMs, cpuMs: reapedChildrenCpuMs() - before };
  } finally {
    await Promise.all([orchestrator.stop(), ...started.map((worker) => worker.stop())]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Per-module figures of the CLI path (see the file's comment). */
export interface CliFigures {
  modulesPerSecond: number;
  /** CPU per module, all processes, ms. */
  cpuMs: number;
}

/** A run of `size` and one of {@link SMALL} modules through the CLIs, as one figure. */
export async function cliRun(
  shape: Extract<Shape, 'wide' | 'chain'>,
  size: number,
  workers: number,
  slots: number,
): Promise<CliFigures> {
  const large = await once(shape, size, workers, slots);
  const small = await once(shape, SMALL, workers, slots);
  const extra = size - SMALL;
  return {
    modulesPerSecond: extra / ((large.durationMs - small.durationMs) / 1_000),
    cpuMs: (large.cpuMs - small.cpuMs) / extra,
  };
}
