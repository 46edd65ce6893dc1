/**
 * What loading a pipeline costs each process, by its size (issue 14): every process of a run
 * (the orchestrator, each worker, each module host) loads the pipeline file, so what grows with
 * the number of modules is paid once per process. Runs `bench/lib/load-child.ts` in a fresh
 * `node --import tsx` process per measurement, for each CHECKOUT in turn (alternating), and
 * prints the medians: the time `loadPipelineFile` took on the bench pipeline (wide), the whole
 * process's CPU, and the cost per module between the smallest and the largest size; `--host`
 * also starts one module host on the pipeline and reports its CPU once it is ready and settled
 * (`hostCpuMs`: its lease watchdog thread boots while the pipeline loads, so the CPU read at
 * `ready`, `hostCpuAtReadyMs`, counts more of that boot for a large pipeline than for a small
 * one). The fingerprints of the checkouts must agree (they are on the wire).
 *
 *   tsx bench/pipeline-load.ts [--sizes 10,2000,4000] [--runs 5] [--host] [CHECKOUT...]
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { benchArgs } from './lib/args.js';
import { benchPath, ROOT } from './lib/processes.js';
import { dagEnv } from './lib/dag.js';
import { median } from './lib/stats.js';

const { values, positionals: args } = benchArgs(
  'usage: tsx bench/pipeline-load.ts [--sizes 10,2000,4000] [--runs 5] [--host] [CHECKOUT...]',
  {
    sizes: { type: 'string', default: '10,2000,4000' },
    runs: { type: 'string', default: '5' },
    host: { type: 'boolean' },
  },
);
const sizes = values.sizes!.split(',').map(Number);
const runs = Number(values.runs);
const mode = values.host ? 'host' : 'load';
const checkouts = args.length === 0 ? [ROOT] : args;

interface Figures {
  loadMs: number;
  cpuMs: number;
  fingerprint: string;
  hostCpuMs?: number;
  hostCpuAtReadyMs?: number;
  hostReadyMs?: number;
}

const load = (root: string, size: number): Figures =>
  JSON.parse(
    execFileSync(process.execPath, ['--import', 'tsx', benchPath('lib/load-child.ts'), root, mode], {
      cwd: ROOT,
      env: { ...process.env, ...dagEnv({ shape: 'wide', size, seed: 1, minMs: 0, maxMs: 0 }) },
      encoding: 'utf8',
    }),
  ) as Figures;

const loads = (): string =>
  loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');
process.stdout.write(`load average ${loads()}; ${mode}, sizes ${sizes.join(', ')}, ${runs} runs\n`);
const results = new Map<string, Figures[]>();
for (let run = 0; run < runs; run++) {
  for (const size of sizes) {
    for (let step = 0; step < checkouts.length; step++) {
      const root = checkouts[(run + step) % checkouts.length]!;
      const key = `${root} ${size}`;
      results.set(key, [...(results.get(key) ?? []), load(root, size)]);
    }
  }
}
const fields = [
  'loadMs',
  'cpuMs',
  ...(mode === 'host' ? ['hostCpuMs', 'hostCpuAtReadyMs', 'hostReadyMs'] : []),
] as const;
const medianOf = (root: string, size: number, field: (typeof fields)[number]): number =>
  median(results.get(`${root} ${size}`)!.map((figures) => figures[field as keyof Figures] as number));
for (const size of sizes) {
  const prints = new Set(checkouts.map((root) => results.get(`${root} ${size}`)![0]!.fingerprint));
  if (prints.size > 1)
    throw new Error(`the checkouts' fingerprints differ at ${size} modules: ${[...prints].join(', ')}`);
}
const [smallest, largest] = [Math.min(...sizes), Math.max(...sizes)];
for (const root of checkouts) {
  for (const size of sizes) {
    const line = fields.map((field) => `${field} ${medianOf(root, size, field).toFixed(1)}`).join(', ');
    process.stdout.write(`${root} ${size} modules: ${line}\n`);
  }
  const perModule = fields
    .map(
      (field) =>
        `${field} ${(((medianOf(root, largest, field) - medianOf(root, smallest, field)) / (largest - smallest)) * 1_000).toFixed(2)} µs`,
    )
    .join(', ');
  process.stdout.write(`${root} per module (${smallest} → ${largest}): ${perModule}\n`);
}
process.stdout.write(`load average at the end ${loads()}\n`);
