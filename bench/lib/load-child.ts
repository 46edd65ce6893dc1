/**
 * One fresh process of the pipeline-load micro-bench (`bench/pipeline-load.ts`), run with
 * `node --import tsx` as the CLIs and the module hosts run. Prints one JSON line.
 *
 *   load-child.ts CHECKOUT load   loads CHECKOUT's bench pipeline with CHECKOUT's
 *                                 `loadPipelineFile` (its size from MPD_BENCH_SIZE) and reads
 *                                 what the three processes read of it
 *   load-child.ts CHECKOUT host   the same, then starts one of CHECKOUT's module hosts on it and
 *                                 waits until it is ready (it loaded the pipeline; before round T
 *                                 it also checked the whole fingerprint): the host's CPU (all its threads) at ready and once
 *                                 settled, and its time to ready
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [root, mode = 'load'] = process.argv.slice(2) as [string, string?];
const importFrom = async <T>(relative: string): Promise<T> =>
  (await import(pathToFileURL(join(root, relative)).href)) as T;

/** CPU time of every live thread of `pid`, ms (`/proc/PID/task/TID/schedstat`: nanoseconds on a CPU). */
function threadsCpuMs(pid: number): number {
  let nanoseconds = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    nanoseconds += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
  }
  return nanoseconds / 1e6;
}

/** The CPU of every thread of `pid` once it stopped growing (by less than 0.2 ms in 100 ms; at most 3 s), ms. */
async function settledCpuMs(pid: number): Promise<number> {
  let last = threadsCpuMs(pid);
  for (let tries = 0; tries < 30; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = threadsCpuMs(pid);
    if (now - last < 0.2) return now;
    last = now;
  }
  return last;
}

const started = process.hrtime.bigint();
const { loadPipelineFile } = await importFrom<typeof import('../../packages/pipeline/src/index.js')>(
  'packages/pipeline/src/index.ts',
);
const imported = process.hrtime.bigint();
const pipeline = await loadPipelineFile(join(root, 'bench/pipelines/bench.pipeline.ts'));
const loaded = process.hrtime.bigint();
// What the processes read of it: the fingerprint (all three), the modules (the worker's
// registration, the host), the order and the dependants (the orchestrator's run).
const { fingerprint } = pipeline;
let edges = 0;
for (const name of pipeline.order) edges += pipeline.dependants.get(name)!.length;
const names = [...pipeline.modules.keys()].length;
const used = process.hrtime.bigint();
const figures: Record<string, unknown> = {
  importMs: Number(imported - started) / 1e6,
  loadMs: Number(loaded - imported) / 1e6,
  useMs: Number(used - loaded) / 1e6,
  cpuMs: threadsCpuMs(process.pid),
  fingerprint,
  modules: names,
  edges,
};
if (mode === 'host') {
  const { ModuleHost } = await importFrom<typeof import('../../packages/worker/src/executor/module-host.js')>(
    'packages/worker/src/executor/module-host.ts',
  );
  const { pino } = await import('pino');
  const spawned = process.hrtime.bigint();
  // Both checkouts' options: a host before round T compared the whole pipeline's `fingerprint`
  // at its start; since, the worker gives each module's digest (`moduleDigest`, read only when
  // a module runs) and the host checks the modules it runs.
  const options = {
    sourceFile: pipeline.sourceFile!,
    fingerprint,
    moduleDigest: (moduleName: string) => pipeline.moduleDigest(moduleName),
    killGraceMs: 1_000,
    heapLimitMb: undefined,
    logger: pino({ level: 'silent' }),
    workerId: 'load-child',
    maxResultBytes: 16 * 1024 * 1024,
    inlineResultBytes: 256 * 1024,
  };
  const host = new ModuleHost(options);
  // The host's channel and pipes do not keep this process alive (a worker's idle hosts do not).
  const keepAlive = setInterval(() => undefined, 1_000);
  await host.ready;
  figures.hostReadyMs = Number(process.hrtime.bigint() - spawned) / 1e6;
  figures.hostCpuAtReadyMs = threadsCpuMs(host.pid);
  // The host's CPU once it settled: its lease watchdog thread (a Node environment of its own,
  // about 20 ms of CPU) starts with the host's code and boots while the pipeline loads, so at
  // `ready` a small pipeline's host has not paid all of it yet and a large one's has: read at
  // `ready`, the difference between sizes counted part of the watchdog's boot as the pipeline's.
  figures.hostCpuMs = await settledCpuMs(host.pid);
  await host.stop(1_000);
  clearInterval(keepAlive);
}
process.stdout.write(`${JSON.stringify(figures)}\n`);
