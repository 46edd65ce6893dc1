/**
 * One real worker process alone, driven over HTTP (issue 14, round P): the worker's own CPU per
 * `execute` call, counted by the kernel, split from its module hosts'. Steadier than a whole
 * dispatch run (no scheduler, no second worker on the same calls): each CHECKOUT's `mpd worker` is
 * started as users run it (`mpd worker --pipeline bench.pipeline.ts --slots 8`, module hosts on,
 * its default `info` log on a pipe read by this process), and this process sends it `--calls`
 * no-op modules' `execute`
 * calls per batch, `--slots` at a time, through this checkout's `@mpd/client` as the orchestrator
 * calls it (`Mpd-Accept-Output: none`, a deadline, a response bound, a `CallAborter`). Every
 * checkout is driven by the same client, so only the worker differs. The workers register with
 * one bench orchestrator (`bench/servers/orchestrator.ts`, this checkout's; its CPU is not
 * counted), as the dispatch benchmark's direct calls do: so the worker's output shipper, its
 * heartbeats and its credential check are on, as users run it; the calls carry `--token`'s
 * token (`MPD_WORKER_TOKEN`), which a worker takes besides its credential.
 *
 *   tsx bench/worker-loop.ts [--calls 2000] [--batches 6] [--warmup 2] [--slots 8] [--node-args FLAGS] [--threads] [CHECKOUT…]
 *
 * CHECKOUTs are repository roots (default: this one); their workers are all started first and
 * kept; then batch after batch, the checkouts' order rotating each batch, so that each gets the
 * same share of the machine's moods. Per batch and process, the CPU the kernel counted for its
 * threads (`/proc/PID/task/TID/schedstat`, run time in ns: no clock-tick rounding, and no hook in
 * the product), divided by the calls:
 * - the worker's main thread (where its JavaScript runs) and its other threads (V8's compiler and
 *   GC, libuv's pool, the log's writes);
 * - its module hosts (its child processes, all threads), and how many hosts were alive (a host
 *   started or gone during a batch shows as a change of pids, which is printed).
 * The first `--warmup` batches of each checkout are printed but left out of the medians. With two
 * checkouts or more, each is also compared with the first round by round (the ratio of its batch
 * to the first checkout's batch of the same round, whose batches ran just before or after it):
 * the median of those ratios, and in how many rounds it was lower. The batches' own figures drift
 * with the machine's load by ±20 % within a hold; a round's two batches mostly drift together.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { CallAborter, createWorkerClient } from '@mpd/client';
import { ACCEPT_OUTPUT_HEADER, formatTimeSpan, OUTPUT_NONE } from '@mpd/contract';
import { benchArgs } from './lib/args.js';
import { dagEnv, moduleName } from './lib/dag.js';
import {
  BENCH_PIPELINE,
  BenchProcess,
  JOIN_TOKEN,
  killAll,
  liveChildren,
  ROOT,
  startBenchOrchestrator,
  WORKER_TOKEN,
} from './lib/processes.js';
import { median } from './lib/stats.js';

const usage =
  'usage: tsx bench/worker-loop.ts [--calls 2000] [--batches 6] [--warmup 2] [--slots 8] [--node-args FLAGS] [--threads] [CHECKOUT…]';
const { values, positionals } = benchArgs(usage, {
  calls: { type: 'string', default: '2000' },
  batches: { type: 'string', default: '6' },
  warmup: { type: 'string', default: '2' },
  slots: { type: 'string', default: '8' },
  'node-args': { type: 'string', default: '' },
  threads: { type: 'boolean', default: false },
});
const calls = Number(values.calls);
const batches = Number(values.batches);
const warmup = Number(values.warmup);
const slots = Number(values.slots);
for (const [flag, value, least] of [
  ['--calls', calls, 1],
  ['--batches', batches, 1],
  ['--warmup', warmup, 0],
  ['--slots', slots, 1],
] as const) {
  if (!Number.isInteger(value) || value < least) {
    process.stderr.write(
      `${flag} must be a whole number of at least ${least}, got ${JSON.stringify(values[flag.slice(2) as 'calls'])}\n`,
    );
    process.exit(2);
  }
}
if (warmup >= batches) {
  process.stderr.write(
    `--warmup (${warmup}) must be less than --batches (${batches}): no batch would be left to judge\n`,
  );
  process.exit(2);
}
/** Node's flags for the workers (e.g. `--cpu-prof --cpu-prof-dir=DIR`; their hosts get the worker's as it gives them). */
const nodeArgs = values['node-args'] === '' ? [] : values['node-args']!.split(' ');
const checkouts = (positionals.length > 0 ? positionals : [ROOT]).map((root) => resolve(root));

/** The pipeline's size: fixed whatever the number of calls (a host's load time is not per call). */
const SIZE = 2_000;
const DEADLINE_MS = 30 * 60_000 + 60_000;
const MAX_RESPONSE_BYTES = 32 * 1024 * 1024 + 64 * 1024;
const ACCEPTS_OUTPUT_NONE = Object.freeze({ [ACCEPT_OUTPUT_HEADER]: OUTPUT_NONE });
const TIMEOUT = formatTimeSpan(30 * 60_000);

/** Run time of one thread so far, ns (`schedstat`'s first field); 0 when it is gone. */
function threadNs(pid: number, tid: string): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return 0;
  }
}

/** A thread's name (`/proc/PID/task/TID/comm`: `node`, `libuv-worker`, a worker thread's name), or `?` once it is gone. */
function threadName(pid: number, tid: string): string {
  try {
    return readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

/**
 * Run time of process `pid` so far, ns: its main thread and its other threads apart, and each
 * thread's by `name#tid` (the thread's number after the main thread's: V8's platform threads come
 * first, a worker thread such as tsx's loader later).
 */
function processNs(pid: number): { main: number; others: number; byThread: Map<string, number> } {
  let others = 0;
  let main = 0;
  let threads: string[] = [];
  const byThread = new Map<string, number>();
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    // gone
  }
  for (const tid of threads) {
    const ns = threadNs(pid, tid);
    if (tid === String(pid)) main = ns;
    else {
      others += ns;
      byThread.set(`${threadName(pid, tid)}#${Number(tid) - pid}`, ns);
    }
  }
  return { main, others, byThread };
}

interface Sample {
  main: number;
  others: number;
  byThread: Map<string, number>;
  /** Every module host's run time by pid, ns (all threads). */
  hosts: Map<number, number>;
}

function sample(pid: number): Sample {
  const own = processNs(pid);
  const hosts = new Map<number, number>();
  for (const host of liveChildren(pid)) {
    const times = processNs(host);
    hosts.set(host, times.main + times.others);
  }
  return { ...own, hosts };
}

interface Figures {
  /** µs per call. */
  main: number;
  others: number;
  hosts: number;
  perSecond: number;
  /** Hosts started or gone during the batch. */
  hostChanges: number;
  hostCount: number;
  /** µs per call of each other thread that ran in the batch (`--threads`), most first. */
  threads: [string, number][];
}

interface Tree {
  root: string;
  worker: BenchProcess;
  url: string;
  client: ReturnType<typeof createWorkerClient>;
  next: number;
  results: Figures[];
}

const PIPELINE_ENV = dagEnv({ shape: 'wide', size: SIZE, seed: 1, minMs: 0, maxMs: 0 });

function startWorker(root: string, index: number, orchestratorUrl: string): BenchProcess {
  const env = { ...PIPELINE_ENV, MPD_JOIN_TOKEN: JOIN_TOKEN, MPD_WORKER_TOKEN: WORKER_TOKEN };
  return new BenchProcess(
    `loop-worker-${index + 1}`,
    join(root, 'packages/cli/src/main.ts'),
    [
      ...['worker', '--pipeline', join(root, 'bench/pipelines/bench.pipeline.ts'), '--id', `loop-worker-${index + 1}`],
      ...['--orchestrator', orchestratorUrl, '--port', '0', '--host', '127.0.0.1', '--slots', String(slots)],
    ],
    env,
    nodeArgs,
  );
}

/** One batch of `calls` execute calls, `slots` at a time, to `tree`'s worker. */
async function batch(tree: Tree): Promise<Figures> {
  const before = sample(tree.worker.pid);
  const start = process.hrtime.bigint();
  let sent = 0;
  await Promise.all(
    Array.from({ length: slots }, async () => {
      while (sent < calls) {
        sent++;
        const index = tree.next++;
        const name = moduleName(index % SIZE);
        const answer = await tree.client.execution.execute({
          body: {
            executionId: `loop-0123456789abcdef.${name}.${index}`,
            moduleTypeName: name,
            serializedModule: '{"sleepMs":0}',
            dependencyResults: {},
            environmentVariables: {},
            timeout: TIMEOUT,
            timestamp: new Date().toISOString(),
          },
          extraHeaders: ACCEPTS_OUTPUT_NONE,
          deadlineMs: DEADLINE_MS,
          maxResponseBytes: MAX_RESPONSE_BYTES,
          aborter: new CallAborter(),
        });
        if (answer.status !== 200) throw new Error(`${tree.root}: execute answered ${answer.status}`);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const after = sample(tree.worker.pid);
  let hostsNs = 0;
  let hostChanges = 0;
  for (const [pid, ns] of after.hosts) {
    const was = before.hosts.get(pid);
    if (was === undefined) hostChanges++;
    hostsNs += ns - (was ?? 0);
  }
  for (const pid of before.hosts.keys()) if (!after.hosts.has(pid)) hostChanges++;
  const us = (ns: number): number => ns / 1_000 / calls;
  const threads = [...after.byThread]
    .map(([name, ns]): [string, number] => [name, us(ns - (before.byThread.get(name) ?? 0))])
    .filter(([, value]) => value >= 0.05)
    .sort((a, b) => b[1] - a[1]);
  return {
    threads,
    main: us(after.main - before.main),
    others: us(after.others - before.others),
    hosts: us(hostsNs),
    perSecond: calls / seconds,
    hostChanges,
    hostCount: after.hosts.size,
  };
}

const load = (): string =>
  loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');
const trees: Tree[] = [];
const orchestrator = startBenchOrchestrator(BENCH_PIPELINE, PIPELINE_ENV);
try {
  const orchestratorUrl = await orchestrator.listeningUrl(120_000);
  process.stdout.write(`load average ${load()}; ${calls} calls a batch, ${slots} at a time, ${batches} batches\n`);
  for (const [index, root] of checkouts.entries()) {
    const worker = startWorker(root, index, orchestratorUrl);
    const url = await worker.listeningUrl(120_000);
    await worker.outputMatch(/registered with the orchestrator/, 'register', 120_000);
    const client = createWorkerClient({ baseUrl: url, token: WORKER_TOKEN });
    trees.push({ root, worker, url, client, next: 0, results: [] });
  }
  for (let round = 0; round < batches; round++) {
    for (let step = 0; step < trees.length; step++) {
      const tree = trees[(round + step) % trees.length]!;
      const figures = await batch(tree);
      tree.results.push(figures);
      process.stdout.write(
        `${round < warmup ? 'warm-up ' : ''}${tree.root}: worker main ${figures.main.toFixed(1)} µs/call, ` +
          `other threads ${figures.others.toFixed(1)}, hosts ${figures.hosts.toFixed(1)} (${figures.hostCount} hosts` +
          `${figures.hostChanges > 0 ? `, ${figures.hostChanges} started or gone` : ''}), ${figures.perSecond.toFixed(0)} calls/s\n`,
      );
      if (values.threads)
        process.stdout.write(
          `  other threads, µs/call: ${figures.threads.map(([name, value]) => `${name} ${value.toFixed(1)}`).join(', ')}\n`,
        );
    }
  }
  for (const tree of trees) {
    const kept = tree.results.slice(warmup);
    const of = (pick: (figures: Figures) => number): string =>
      `${median(kept.map(pick)).toFixed(1)} (${kept.map((figures) => pick(figures).toFixed(1)).join(', ')})`;
    process.stdout.write(
      `median ${tree.root}: worker main ${of((f) => f.main)} µs/call; other threads ${of((f) => f.others)}; ` +
        `worker total ${of((f) => f.main + f.others)}; hosts ${of((f) => f.hosts)}; ` +
        `${median(kept.map((f) => f.perSecond)).toFixed(0)} calls/s\n`,
    );
  }
  // Paired by round: each checkout against the first, batch for batch (the two batches of a round
  // run one after the other, so they share the machine's mood far more than batches apart do).
  const [first, ...others] = trees;
  for (const tree of others) {
    const ratios = tree.results.slice(warmup).map((figures, index) => {
      const base = first!.results[warmup + index]!;
      return { main: figures.main / base.main, total: (figures.main + figures.others) / (base.main + base.others) };
    });
    const lower = ratios.filter((ratio) => ratio.main < 1).length;
    process.stdout.write(
      `paired ${tree.root} / ${first!.root}, round by round: worker main ${median(ratios.map((r) => r.main)).toFixed(3)} ` +
        `(lower in ${lower} of ${ratios.length} rounds), worker total ${median(ratios.map((r) => r.total)).toFixed(3)}\n`,
    );
  }
  process.stdout.write(`load average at the end ${load()}\n`);
} finally {
  await Promise.all(trees.map((tree) => tree.client.close()));
  await Promise.all(trees.map((tree) => tree.worker.stop()));
  await orchestrator.stop();
  killAll();
}
