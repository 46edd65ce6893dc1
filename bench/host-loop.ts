/**
 * The worker's executor alone, no HTTP: runs rounds of no-op modules of the bench pipeline
 * (wide) through a `ModuleExecutor`, `--slots` at a time, and prints per round the modules/s and
 * the CPU per module of this process (the worker's side) and of its module hosts (read from
 * `/proc`). Steadier than `pnpm bench`'s dispatch benchmark for the cost of a module host, as
 * no orchestrator or HTTP shares the cores.
 *
 *   tsx bench/host-loop.ts [--isolation process|none] [--slots 8] [--rounds 5] [--modules 4000] [--lease]
 *
 * `--lease`: renew the worker's heartbeat lease every second, as a registered worker does. The
 * worker's log lines go to `MPD_LOOP_LOG` (a file; /dev/null by default). Last, it closes the
 * executor (every host stopped) and prints the worker's and the hosts' CPU for that (round AD).
 * Add `--cpu-prof` before the script (`node --cpu-prof --import tsx bench/host-loop.ts`) to
 * profile this process and, through the flags the hosts inherit, every host.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { loadPipelineFile } from '@mpd/pipeline';
import { ModuleExecutor, type ExecutionRequest } from '@mpd/worker';
import { pino, destination } from 'pino';
import { dagEnv } from './lib/dag.js';
import { BENCH_PIPELINE } from './lib/processes.js';
import { liveChildren, processTimes } from './lib/proc-times.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback: string): string => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? (args[index + 1] ?? fallback) : fallback;
};
const isolation = arg('isolation', 'process') as 'process' | 'none';
const slots = Number(arg('slots', '8'));
const rounds = Number(arg('rounds', '5'));
const modules = Number(arg('modules', '4000'));
const SIZE = 2_000;

Object.assign(process.env, dagEnv({ shape: 'wide', size: SIZE, seed: 1, minMs: 0, maxMs: 0 }));
const pipeline = await loadPipelineFile(BENCH_PIPELINE);
const logger = pino(
  { level: 'info', base: { service: 'mpd-worker' } },
  destination({ dest: process.env.MPD_LOOP_LOG ?? '/dev/null', sync: false }),
);
const executor = new ModuleExecutor({
  workerId: 'loop-worker',
  pipeline,
  slots,
  defaultTimeoutMs: 60_000,
  workingDirectory: tmpdir(),
  completedRetentionMs: 600_000,
  maxResultBytes: 16 * 1024 * 1024,
  isolation,
  killGraceMs: 10_000,
  moduleHeapLimitMb: undefined,
  logger,
});
await executor.ready();
// As a worker registered with an orchestrator: its heartbeat lease renewed at each heartbeat.
if (args.includes('--lease')) {
  executor.renewLease(30_000);
  setInterval(() => executor.renewLease(30_000), 1_000).unref();
}

/** CPU ms of this process's children (the module hosts), by thread name (`node`: the main thread). */
function hostsCpuMs(): Map<string, number> {
  const tick = 10; // USER_HZ = 100
  const byThread = new Map<string, number>();
  const children = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'latin1')
    .split(' ')
    .filter(Boolean);
  for (const pid of children) {
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
        const name =
          tid === pid ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/\d+$/, '');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        byThread.set(name, (byThread.get(name) ?? 0) + (Number(fields[11]) + Number(fields[12])) * tick); // utime, stime
      }
    } catch {
      // gone
    }
  }
  return byThread;
}
const sum = (map: Map<string, number>): number => [...map.values()].reduce((a, b) => a + b, 0);
const ownCpuMs = (): number => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1_000;
};

let nextId = 0;
const request = (): ExecutionRequest => {
  const index = nextId++;
  return {
    executionId: `loop-${index}`,
    // Each execution id is new: its fingerprint is never compared (see ModuleExecutor.execute).
    fingerprint: `loop-${index}`,
    moduleTypeName: `m${String(index % SIZE).padStart(5, '0')}`,
    params: { sleepMs: 0 },
    dependencyResults: {},
    environmentVariables: {},
  };
};

for (let round = 1; round <= rounds; round++) {
  let left = modules;
  const started = performance.now();
  const ownBefore = ownCpuMs();
  const hostsBefore = hostsCpuMs();
  const loop = async (): Promise<void> => {
    while (left-- > 0) {
      const decision = executor.execute(request());
      if (decision.kind !== 'started') throw new Error(`not started: ${decision.kind}`);
      const outcome = await decision.outcome;
      if (outcome.status !== 200) throw new Error(`failed: ${outcome.body.errorMessage}`);
      // The slot is free once the execution stopped (just after its outcome).
      while (executor.load >= slots) await new Promise((resolve) => setImmediate(resolve));
    }
  };
  await Promise.all(Array.from({ length: slots }, loop));
  const seconds = (performance.now() - started) / 1_000;
  const own = (ownCpuMs() - ownBefore) / modules;
  const hostsAfter = hostsCpuMs();
  const hosts = (sum(hostsAfter) - sum(hostsBefore)) / modules;
  const threads = [...hostsAfter]
    .map(([name, ms]) => [name, (ms - (hostsBefore.get(name) ?? 0)) / modules] as const)
    .filter(([, ms]) => ms > 0)
    .map(([name, ms]) => `${name} ${ms.toFixed(3)}`)
    .join(', ');
  process.stdout.write(
    `${isolation} round ${round}: ${(modules / seconds).toFixed(0)} modules/s, CPU per module: worker ${own.toFixed(3)} ms, hosts ${hosts.toFixed(3)} ms (${threads}), total ${(own + hosts).toFixed(3)} ms\n`,
  );
}
// The close: every host stopped and waited for (round AD: the worker's polls of each host's
// group walked /proc each time). The worker's CPU, and the hosts': what they had used before
// the close against what this process reaped of them (cutime + cstime) once they exited.
const closeStarted = performance.now();
const closeCpu = ownCpuMs();
// Each host's whole CPU so far (its threads that ended too, as its reaped time counts them).
const hostsBeforeClose = liveChildren(process.pid).reduce((total, pid) => total + (processTimes(pid)?.ownMs ?? 0), 0);
const reapedMs = (): number => processTimes(process.pid)!.reapedMs;
const reapedBefore = reapedMs();
await executor.close('loop over');
process.stdout.write(
  `close: worker ${(ownCpuMs() - closeCpu).toFixed(1)} ms CPU, hosts ${(reapedMs() - reapedBefore - hostsBeforeClose).toFixed(0)} ms CPU, ${(performance.now() - closeStarted).toFixed(0)} ms\n`,
);
process.exit(0);
