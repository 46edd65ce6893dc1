/**
 * Benchmark 2's CLI path alone (issue 14), to compare two checkouts quickly: runs
 * `mpd orchestrator` + 2 `mpd worker` (bench/cli-path.ts) for each checkout in turn, `runs`
 * times alternating, and prints modules/s and CPU per module of each run.
 *
 *   tsx bench/cli-compare.ts [--shape wide|chain] [--size 2000] [--runs 3] [--slots 8] [--cpu-prof] [CHECKOUT...]
 *
 * Each CHECKOUT is a repository root with its own `packages/cli` and `bench/pipelines` (default:
 * this one). `--cpu-prof` profiles every process (orchestrator, workers, module hosts) into
 * `bench/profiles/` (summarise with `tsx bench/profile-summary.ts FILE`).
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { type CliFigures, cliRun, type CliUnderTest, THIS_CLI } from './cli-path.js';
import { compareArgs, takeCpuProf, takeOption } from './lib/compare-args.js';
import { killAll } from './lib/processes.js';
import { median } from './lib/stats.js';

const args = compareArgs;
const shape = takeOption('shape', 'wide') as 'wide' | 'chain';
const size = Number(takeOption('size', '2000'));
const runs = Number(takeOption('runs', '3'));
const slots = Number(takeOption('slots', '8'));
takeCpuProf();
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
for (let run = 0; run < runs; run++) {
  for (let step = 0; step < checkouts.length; step++) {
    const [name, cli] = checkouts[(run + step) % checkouts.length]!;
    const figures = await cliRun(shape, size, 2, slots, cli);
    results.set(name, [...(results.get(name) ?? []), figures]);
    process.stdout.write(
      `${name}: ${figures.modulesPerSecond.toFixed(0)} modules/s, ${figures.cpuMs.toFixed(3)} ms CPU/module (orchestrator ${figures.split.orchestrator.toFixed(3)}, workers ${figures.split.workers.toFixed(3)}, hosts ${figures.split.hosts.toFixed(3)})\n`,
    );
  }
}
for (const [name, figures] of results) {
  process.stdout.write(
    `median ${name}: ${median(figures.map((f) => f.modulesPerSecond)).toFixed(0)} modules/s, ${median(figures.map((f) => f.cpuMs)).toFixed(3)} ms CPU/module\n`,
  );
}
process.stdout.write(
  `load average at the end ${loadavg()
    .map((load) => load.toFixed(2))
    .join(' ')}\n`,
);
killAll();
