/**
 * Benchmark 2's CLI path alone (issue 14), to compare two checkouts quickly: runs
 * `mpd orchestrator` + 2 `mpd worker` (bench/cli-path.ts) for each checkout in turn, `runs`
 * times alternating, and prints modules/s and CPU per module of each run.
 *
 *   tsx bench/cli-compare.ts [--shape wide|chain] [--size 2000] [--warm-size 8000] [--runs 3] [--slots 8] [--cpu-prof] [CHECKOUT...]
 *
 * Each CHECKOUT is a repository root with its own `packages/cli` and `bench/pipelines` (default:
 * this one). `--warm-size N` also runs N modules and prints the warm figure, N − size modules
 * on fresh processes (see bench/cli-path.ts). `--cpu-prof` profiles every process (orchestrator, workers, module hosts) into
 * `bench/profiles/` (summarise with `tsx bench/profile-summary.ts FILE`).
 *
 * Each checkout first runs {@link SMALL} modules once, not measured (`warmUp`: tsx's cache of its
 * compiled files filled). Each run prints the judged figure (the processes' whole lives) and,
 * under it, the same without what each process spent starting (`runOnly`: from the run's start
 * on), which the starts' run-to-run spread does not move (see docs/round-p/p3.md).
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import {
  type CliFigures,
  cliRun,
  type CliUnderTest,
  type HostsAtEnd,
  type PerModule,
  runOnly,
  SMALL,
  THIS_CLI,
  warmUp,
} from './cli-path.js';
import { benchArgs } from './lib/args.js';
import { benchPath, killAll } from './lib/processes.js';
import { median } from './lib/stats.js';

const USAGE = `
usage: tsx bench/cli-compare.ts [--shape wide|chain] [--size 2000] [--warm-size 0] [--runs 3] [--slots 8] [--cpu-prof] [CHECKOUT...]

Runs mpd orchestrator + 2 mpd worker of each CHECKOUT (a repository root; default: this one)
in turn, --runs times alternating, and prints modules/s and CPU per module of each run.
  --shape wide|chain  the pipeline's shape (default wide)
  --size N            modules per run (default 2000)
  --warm-size N       also run N modules and print the warm figure, N - size modules (default 0: not run)
  --runs N            runs of each checkout (default 3)
  --slots N           slots per worker (default 8)
  --cpu-prof          profile every process into bench/profiles/
  -h, --help          show this help
`;
const { values, positionals: args } = benchArgs(USAGE, {
  shape: { type: 'string', default: 'wide' },
  size: { type: 'string', default: '2000' },
  runs: { type: 'string', default: '3' },
  slots: { type: 'string', default: '8' },
  'warm-size': { type: 'string', default: '0' },
  'cpu-prof': { type: 'boolean', default: false },
});
if (values.shape !== 'wide' && values.shape !== 'chain') {
  process.stderr.write(`--shape must be wide or chain, got ${JSON.stringify(values.shape)}\n${USAGE.trim()}\n`);
  process.exit(2);
}
const shape = values.shape;
const size = Number(values.size);
const runs = Number(values.runs);
const slots = Number(values.slots);
const warmSize = Number(values['warm-size']);
if (values['cpu-prof']) process.env.MPD_BENCH_CPU_PROF_DIR = benchPath('profiles');
const checkouts: [string, CliUnderTest][] =
  args.length === 0
    ? [['this', THIS_CLI]]
    : args.map((root) => [
        root,
        { mpd: join(root, 'packages/cli/src/main.ts'), pipeline: join(root, 'bench/pipelines/bench.pipeline.ts') },
      ]);

process.on('SIGINT', () => {
  killAll();
  process.exit(130);
});

const results = new Map<string, CliFigures[]>();
process.stdout.write(
  `load average ${loadavg()
    .map((load) => load.toFixed(2))
    .join(' ')}; ${shape} ${size}\n`,
);
/** The workers' children other than hosts (esbuild's service: see HostsAtEnd), as ` + 2 esbuild`. */
const othersText = (at: HostsAtEnd): string =>
  Object.entries(at.others)
    .map(([command, count]) => ` + ${count} ${command || 'gone'}`)
    .join('');
// A run of each checkout first, not measured: its files compiled into tsx's cache (see warmUp).
for (const [name, cli] of checkouts) {
  const at = await warmUp(shape, 2, slots, cli);
  process.stdout.write(`warm-up ${name}: ${at.live} hosts${othersText(at)} at the end of ${SMALL}\n`);
}
for (let run = 0; run < runs; run++) {
  for (let step = 0; step < checkouts.length; step++) {
    const [name, cli] = checkouts[(run + step) % checkouts.length]!;
    const figures = await cliRun(shape, size, 2, slots, cli, warmSize);
    results.set(name, [...(results.get(name) ?? []), figures]);
    const line = (figures: PerModule): string =>
      `${figures.modulesPerSecond.toFixed(0)} modules/s, ${figures.cpuMs.toFixed(3)} ms CPU/module (orchestrator ${figures.split.orchestrator.toFixed(3)}, workers ${figures.split.workers.toFixed(3)}, hosts ${figures.split.hosts.toFixed(3)}: starts ${figures.split.hostStarts.toFixed(3)}, run ${(figures.split.hosts - figures.split.hostStarts).toFixed(3)})`;
    // The hosts at each run's end: how many lived, their RSS (now / peak, MiB, all hosts), and
    // the CPU of any that exited during the run (counted in their share; none expected).
    const hosts = (at: HostsAtEnd, modules: number): string =>
      `${modules}: ${at.live} hosts${othersText(at)}, RSS ${at.rssMb.toFixed(0)}/${at.peakRssMb.toFixed(0)} MiB${at.exitedMs > 0 ? `, exited ${at.exitedMs.toFixed(0)} ms CPU` : ''}`;
    const hostLines = [
      hosts(figures.hosts.small, SMALL),
      hosts(figures.hosts.size, size),
      ...(figures.warm ? [hosts(figures.warm.hosts, warmSize)] : []),
    ];
    // Without what the processes spent starting (see runOnly): steadier from run to run.
    const running = (figures: PerModule): string => {
      const run = runOnly(figures.split);
      return `${run.total.toFixed(3)} (orchestrator ${run.orchestrator.toFixed(3)}, workers ${run.workers.toFixed(3)}, hosts ${run.hosts.toFixed(3)}; starts: orchestrator ${figures.split.orchestratorStart.toFixed(3)}, workers ${figures.split.workerStarts.toFixed(3)}, hosts ${figures.split.hostStarts.toFixed(3)})`;
    };
    process.stdout.write(
      `${name}: ${line(figures)}${figures.warm ? `; warm (${warmSize} - ${size}): ${line(figures.warm)}` : ''}\n  run only, ms CPU/module: ${running(figures)}${figures.warm ? `; warm ${running(figures.warm)}` : ''}\n  hosts at the end of ${hostLines.join('; ')}\n`,
    );
  }
}
for (const [name, figures] of results) {
  process.stdout.write(
    `median ${name}: ${median(figures.map((f) => f.modulesPerSecond)).toFixed(0)} modules/s, ${median(figures.map((f) => f.cpuMs)).toFixed(3)} ms CPU/module (run only ${median(figures.map((f) => runOnly(f.split).total)).toFixed(3)})${figures[0]!.warm ? `; warm: ${median(figures.map((f) => f.warm!.modulesPerSecond)).toFixed(0)} modules/s, ${median(figures.map((f) => f.warm!.cpuMs)).toFixed(3)} ms CPU/module` : ''}\n`,
  );
}
process.stdout.write(
  `load average at the end ${loadavg()
    .map((load) => load.toFixed(2))
    .join(' ')}\n`,
);
killAll();
