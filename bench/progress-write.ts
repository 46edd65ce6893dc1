/**
 * What the orchestrator CLI's progress output costs per module when stdout is not a terminal (a
 * CI log, a pipe), by how often it writes (issue 14, round Z): `ProgressPrinter` with `flushMs`
 * 0 (one write per turn of the event loop, the behaviour before round Z, the baseline) against
 * its default (`PROGRESS_FLUSH_MS`, 100 ms blocks), alternating, in fresh child processes whose
 * stdout is a pipe this process reads and drops (a write to a pipe is synchronous on Linux, as
 * the CLI's is). Each module is two events (started, finished) in turns of their own, as a wide
 * run of no-op modules gives them. Prints the medians: µs of CPU (user + system) per module.
 *
 *   tsx bench/progress-write.ts [--modules 20000] [--runs 5]
 */
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { benchArgs } from './lib/args.js';
import { benchPath } from './lib/processes.js';
import { median } from './lib/stats.js';

const { values } = benchArgs('usage: tsx bench/progress-write.ts [--modules 20000] [--runs 5]', {
  modules: { type: 'string', default: '20000' },
  runs: { type: 'string', default: '5' },
});
const modules = Number(values.modules);
const runs = Number(values.runs);

/** One child's figure: µs of CPU per module with `flushMs`. */
function measure(flushMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', benchPath('lib/progress-child.ts'), String(modules), String(flushMs)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stdout.resume();
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => {
      const figure = /^cpu-us-per-module (\S+)$/m.exec(stderr)?.[1];
      if (code !== 0 || figure === undefined) reject(new Error(`progress child exited ${code}: ${stderr}`));
      else resolve(Number(figure));
    });
  });
}

const figures: Record<string, number[]> = { perTurn: [], blocks: [] };
for (let run = 0; run < runs; run++) {
  figures.perTurn!.push(await measure(0));
  figures.blocks!.push(await measure(100));
}
const perTurn = median(figures.perTurn!);
const blocks = median(figures.blocks!);
process.stdout.write(
  `progress output to a pipe, ${modules} modules, ${runs} runs alternating, load ${loadavg()[0]!.toFixed(2)}\n` +
    `  a write per turn (flushMs 0, baseline): ${perTurn.toFixed(2)} µs CPU a module\n` +
    `  100 ms blocks (default):                ${blocks.toFixed(2)} µs CPU a module (${(blocks / perTurn).toFixed(2)}×)\n`,
);
