/**
 * `bench/progress-write.ts`'s child: prints MODULES modules' events (started, then finished, each
 * in a turn of its own) through a `ProgressPrinter` with `flushMs` FLUSH_MS to its stdout (a pipe)
 * and writes `cpu-us-per-module N` to stderr.
 *
 *   node --import tsx bench/lib/progress-child.ts MODULES FLUSH_MS
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { ProgressPrinter } from '../../packages/orchestrator/src/cli/progress.js';

const [modules, flushMs] = process.argv.slice(2).map(Number) as [number, number];
const printer = new ProgressPrinter({ out: process.stdout, tty: false, outputMode: 'prefixed', flushMs });
/** Half of them first, not measured: the code warmed up as in a run's steady part. */
async function print(from: number, to: number): Promise<void> {
  for (let index = from; index < to; index++) {
    const module = `module-${index}`;
    printer.event({ type: 'module-started', module, workerId: 'worker-1', executionId: `x.${index}`, attempt: 1 });
    await nextTurn();
    printer.event({
      type: 'module-finished',
      module,
      result: { name: module, status: 'Successful', workerId: 'worker-1', attempts: [], durationMs: 1 },
    });
    await nextTurn();
  }
}
await print(0, modules / 2);
const before = process.cpuUsage();
await print(modules / 2, modules);
printer.stop();
const used = process.cpuUsage(before);
process.stderr.write(`cpu-us-per-module ${((used.user + used.system) / (modules / 2)).toFixed(3)}\n`);
