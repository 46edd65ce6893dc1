/**
 * The orchestrator CLI's progress off a terminal (CI logs), issue 14, round Z: a child process
 * whose stdout is a pipe (read and dropped by this process, as a CI runner reads it) prints the
 * events of `modules` no-op modules through a `ProgressPrinter` (`prefixed`: started, one output
 * line, finished), each event in its own turn of the event loop as the runner's HTTP answers
 * come; its CPU (`process.cpuUsage`, µs per module) for the loop. Variants, alternating order:
 * - `block`: the printer's default, a write every `PROGRESS_FLUSH_MS` (100 ms) or 16 Ki chars;
 * - `turn` (the baseline): the printer before round Z (`bench/lib/progress-before-z.ts`), a
 *   write at the end of each turn that printed (`setImmediate`).
 * The turns' own cost (the loop without a printer, `none`) is subtracted from both.
 *
 *   tsx bench/progress-write.ts --child block|turn|none MODULES   (the child; prints its CPU µs)
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ProgressPrinter } from '../packages/orchestrator/src/cli/progress.js';
import { ProgressPrinterBeforeZ } from './lib/progress-before-z.js';
import type { Row } from './lib/report.js';
import { median } from './lib/stats.js';

export interface ProgressWriteConfig {
  runs: number;
  modules: number;
}

export const PROGRESS_WRITE_FULL: ProgressWriteConfig = { runs: 5, modules: 20_000 };
export const PROGRESS_WRITE_SMOKE: ProgressWriteConfig = { runs: 1, modules: 200 };

type Variant = 'block' | 'turn' | 'none';
const VARIANTS: readonly Variant[] = ['block', 'turn', 'none'];

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The child: prints `modules` modules' events, then its CPU for them (µs) on stderr. */
async function child(variant: Variant, modules: number): Promise<void> {
  const options = { out: process.stdout, tty: false, outputMode: 'prefixed' } as const;
  const printer =
    variant === 'none'
      ? undefined
      : variant === 'turn'
        ? new ProgressPrinterBeforeZ(options)
        : new ProgressPrinter(options);
  const run = async (count: number, offset: number): Promise<void> => {
    for (let i = offset; i < offset + count; i++) {
      const module = `m${String(i).padStart(5, '0')}`;
      printer?.event({ type: 'module-started', module, workerId: 'w1', executionId: `r.${module}.1`, attempt: 1 });
      await nextTurn();
      printer?.event({
        type: 'output',
        module,
        attempt: 1,
        workerId: 'w1',
        lines: [{ time: 0, stream: 'stdout', text: `${module} says hello` }],
      });
      await nextTurn();
      printer?.event({
        type: 'module-finished',
        module,
        result: { name: module, status: 'Successful', workerId: 'w1', attempts: [], durationMs: 1 },
      });
      await nextTurn();
    }
  };
  await run(Math.min(2_000, modules), 0); // warm-up
  const before = process.cpuUsage();
  await run(modules, 1_000_000);
  printer?.stop();
  const used = process.cpuUsage(before);
  process.stderr.write(`${used.user + used.system}\n`);
}

async function measure(variant: Variant, modules: number): Promise<number> {
  const process_ = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', variant, String(modules)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  process_.stdout.resume();
  let stderr = '';
  process_.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => process_.on('close', resolve));
  const micros = Number(stderr.trim().split('\n').at(-1));
  if (code !== 0 || !Number.isFinite(micros))
    throw new Error(`progress-write child ${variant} exited ${code}: ${stderr}`);
  return micros;
}

export async function progressWriteBench(config: ProgressWriteConfig): Promise<{ rows: Row[]; details: unknown }> {
  const figures: Record<Variant, number[]> = { block: [], turn: [], none: [] };
  for (let run = 0; run < config.runs; run++) {
    const order = run % 2 === 0 ? VARIANTS : [...VARIANTS].reverse();
    for (const variant of order) figures[variant].push((await measure(variant, config.modules)) / config.modules);
  }
  const none = median(figures.none);
  const block = figures.block.map((micros) => micros - none);
  const turn = figures.turn.map((micros) => micros - none);
  return {
    rows: [
      {
        benchmark: 'CLI progress off a terminal (issue 14)',
        metric: "the printer's CPU per module (3 events), the event loop's turns subtracted",
        unit: 'µs',
        value: median(block),
        baseline: median(turn),
        baselineLabel: 'a write per turn that printed (the printer before round Z)',
        runs: block,
        baselineRuns: turn,
        spread: true,
      },
    ],
    details: { ...figures, modules: config.modules },
  };
}

if (process.argv[2] === '--child') {
  await child(process.argv[3] as Variant, Number(process.argv[4]));
}
