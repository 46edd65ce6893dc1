/**
 * The worker's output intake alone (issue 13, round I): an `OutputShipper` in this process takes
 * benchmark 5's 200,000 lines of 100 characters as a module host's pipe gives them (64 KiB blocks
 * of whole lines through `writeBytes`, the event loop turning between blocks), spills past its
 * 1 MiB, and makes every batch; its HTTP calls are answered at once by a stub that accepts each
 * batch (and encodes its body, as the fetcher does). Per run, this process's CPU time (user +
 * system) while the blocks are taken (what the worker spends while the command writes) and until
 * the final batch was answered. No other process and no socket: a figure of the shipper's own
 * work that the machine's load moves far less than benchmark 5's ratio.
 *
 * `tsx bench/output-intake.ts [ROOT]`: the shipper of ROOT (a checkout of this repository, e.g.
 * main's worktree; default this one), 12 runs, the first a warm-up; prints the medians of the
 * others. Compare two by running it for each in turn, alternating, in fresh processes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { OutputShipper as Shipper } from '@mpd/worker';
import pino from 'pino';
import { outputLine } from './lib/output-lines.js';
import { ROOT } from './lib/processes.js';
import { median } from './lib/stats.js';

const root = resolve(process.argv[2] ?? ROOT);
const RUNS = 12;

const blocks: Buffer[] = [];
let text = '';
for (let index = 0; index < 200_000; index++) {
  text += `${outputLine(index)}\n`;
  if (text.length >= 64 * 1024) {
    blocks.push(Buffer.from(text));
    text = '';
  }
}
if (text !== '') blocks.push(Buffer.from(text));

const cpuMs = (since: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1_000;
};

/** `RUNS` executions through one shipper of `root`'s worker: [intake ms, total ms] per run. */
async function measure(): Promise<[number, number][]> {
  const { OutputShipper } = (await import(join(root, 'packages/worker/src/index.ts'))) as {
    OutputShipper: typeof Shipper;
  };
  let finalAnswered: (() => void) | undefined;
  const client = {
    executions: {
      output: async ({ body }: { body: { text: string } }) => {
        const json = body.text;
        Buffer.byteLength(json);
        const fromSeq = Number(/"fromSeq":(\d+)/.exec(json)![1]);
        let lines = 0;
        for (let at = json.indexOf('{"time":'); at >= 0; at = json.indexOf('{"time":', at + 1)) lines++;
        if (json.endsWith(',"final":true}')) setImmediate(() => finalAnswered?.());
        return { status: 200, body: { acceptedThrough: fromSeq + lines } };
      },
    },
  };
  const spillDir = mkdtempSync(join(tmpdir(), 'mpd-bench-intake-'));
  const shipper = new OutputShipper({
    client: client as never,
    workerId: 'bench',
    credential: () => 'bench',
    logger: pino({ level: 'silent' }),
    spillDir,
    initialBackoffMs: 10,
    maxBackoffMs: 10,
  });
  const runs: [number, number][] = [];
  try {
    for (let run = 0; run < RUNS; run++) {
      const answered = new Promise<void>((done) => (finalAnswered = done));
      const start = process.cpuUsage();
      const writer = shipper.open(`e${run}`);
      for (const block of blocks) {
        writer.writeBytes!('stdout', block, (line) => line);
        await new Promise((next) => setImmediate(next));
      }
      const intake = cpuMs(start);
      writer.end();
      await answered;
      runs.push([intake, cpuMs(start)]);
    }
  } finally {
    await shipper.close();
    rmSync(spillDir, { recursive: true, force: true });
  }
  return runs;
}

const runs = (await measure()).slice(1);
const intake = median(runs.map(([ms]) => ms)).toFixed(1);
const total = median(runs.map(([, ms]) => ms)).toFixed(1);
console.log(`${root}: CPU per run, median of ${runs.length}: intake ${intake} ms, to the final batch ${total} ms`);
