/**
 * The BullMQ peer of the dispatch benchmark (issue 14): one process per role, driven over IPC.
 * - `worker`: a BullMQ `Worker` with `--concurrency` slots running no-op jobs, as a team would
 *   run mpd's no-op modules on BullMQ; it notes when each job's processor started and ended
 *   (`process.hrtime`, the monotonic clock every process on the machine shares, µs). Started
 *   `sandboxed`, the processor is a file BullMQ runs in child processes of the worker
 *   (bench/servers/bullmq-processor.ts, `useWorkerThreads: false`): BullMQ's own isolation, the
 *   peer closest to mpd's module hosts. Its pool of children is filled before the run (one per
 *   slot, as mpd's module hosts are started before a run), so a run times jobs, not forks.
 * - `driver`: what plays the orchestrator's part: adds the jobs and waits for their completion
 *   through `QueueEvents` (BullMQ's way for a producer to learn a job's result). Shapes:
 *   `wide` (every job at once, `addBulk`), `chain` (the next job added when the driver learns
 *   that the previous one completed, carrying its result: a scheduler on top of a queue) and
 *   `flow` (the chain as one BullMQ flow: each job the parent of the one before, so Redis
 *   itself moves a parent to the wait list when its child completes).
 * Usage: `node --import tsx bench/servers/bullmq.ts worker|driver` with `MPD_BENCH_REDIS_PORT`
 * (and `MPD_BENCH_BULLMQ_CONCURRENCY` for a worker).
 */
import { type ChildPool, FlowProducer, type FlowJob, Queue, QueueEvents, Worker } from 'bullmq';
import { serveIpc } from '../lib/ipc.js';
import { benchPath } from '../lib/processes.js';

const role = process.argv[2];
const connection = {
  host: '127.0.0.1',
  port: Number(process.env.MPD_BENCH_REDIS_PORT),
  // BullMQ's workers need it (blocking commands); the same for every connection here.
  maxRetriesPerRequest: null,
};
const nowUs = (): number => Number(process.hrtime.bigint() / 1_000n);
/** The sandboxed workers' processor file. */
const PROCESSOR = benchPath('servers/bullmq-processor.ts');

/**
 * Forks `count` children into a sandboxed worker's pool and frees them, so the run's jobs find
 * them started. BullMQ creates children on a job's demand and keeps them in the worker's
 * `childPool` (not a public field in BullMQ 6.7; `ChildPool.retain`/`release` are exported).
 * @throws when the field is gone (another BullMQ version): the bench must not silently time forks
 */
async function fillChildPool(worker: Worker, count: number): Promise<void> {
  const pool = (worker as unknown as { childPool?: ChildPool }).childPool;
  if (!pool) throw new Error('BullMQ Worker has no childPool: cannot start its sandboxed children before the run');
  const children = await Promise.all(Array.from({ length: count }, () => pool.retain(PROCESSOR)));
  for (const child of children) pool.release(child);
}

/** How long a driver waits for the next completion before it fails the run, ms. */
const STALL_MS = 60_000;

/** A job's processor run on a worker: its index in the run and when it started and ended, µs. */
export type JobSpan = [index: number, start: number, end: number];

export type PeerShape = 'wide' | 'chain' | 'flow';

/** What the driver measured of one run, µs on the shared monotonic clock. */
export interface DriverTimings {
  /** When the driver started adding jobs. */
  started: number;
  /** When it learnt that the last job completed. */
  ended: number;
  /** `chain`: when the driver learnt that job i completed (index i), so job i + 1 was ready. */
  learnt: number[];
}

if (role === 'worker') {
  const concurrency = Number(process.env.MPD_BENCH_BULLMQ_CONCURRENCY ?? '8');
  let worker: Worker | undefined;
  let spans: JobSpan[] = [];
  serveIpc({
    async start({ queue, sandboxed = false }: { queue: string; sandboxed?: boolean }) {
      spans = [];
      if (sandboxed) {
        worker = new Worker(queue, PROCESSOR, { connection, concurrency, useWorkerThreads: false });
        // The child answers its own span (a sandboxed processor's return value comes back here).
        worker.on('completed', (job, [start, end]: [number, number]) => {
          spans.push([(job.data as { i: number }).i, start, end]);
        });
        await fillChildPool(worker, concurrency);
      } else {
        worker = new Worker(
          queue,
          async (job) => {
            const start = nowUs();
            const index = (job.data as { i: number }).i;
            spans.push([index, start, nowUs()]);
            return start;
          },
          { connection, concurrency },
        );
      }
      await worker.waitUntilReady();
    },
    async stop() {
      await worker?.close();
      worker = undefined;
      return spans;
    },
  });
} else if (role === 'driver') {
  serveIpc({
    async run({ queue: name, shape, size }: { queue: string; shape: PeerShape; size: number }): Promise<DriverTimings> {
      // The events stream holds every event of the run (about four per job: added, waiting,
      // active, completed): trimmed at BullMQ's default 10,000, a run of more than about 2,500
      // jobs lost completions that QueueEvents had not read yet when the machine was busy, and
      // the driver waited for them for ever (benchmark 2's 8,000-job warm runs).
      const queue = new Queue(name, { connection, streams: { events: { maxLen: Math.max(10_000, size * 5) } } });
      // From the stream's start (the queue is new): with the default `$`, events written before
      // its first read (a fast run) were missed and the run never ended.
      const events = new QueueEvents(name, { connection, lastEventId: '0-0' });
      const flows = shape === 'flow' ? new FlowProducer({ connection }) : undefined;
      try {
        await Promise.all([queue.waitUntilReady(), events.waitUntilReady(), flows?.waitUntilReady()]);
        const learnt: number[] = [];
        let completed = 0;
        // Job ids name the index (`j7`), so an event is matched without waiting for `add`'s answer.
        const lastId = `j${size - 1}`;
        let stall: NodeJS.Timeout | undefined;
        const done = new Promise<void>((resolve, reject) => {
          // A run that learns of no completion for this long has lost one: fail, do not hang the bench.
          const watch = (): void => {
            clearTimeout(stall);
            stall = setTimeout(
              () => reject(new Error(`no completion learnt for ${STALL_MS} ms (${completed} of ${size})`)),
              STALL_MS,
            );
          };
          watch();
          events.on('failed', ({ jobId, failedReason }) => reject(new Error(`job ${jobId} failed: ${failedReason}`)));
          events.on('completed', ({ jobId, returnvalue }) => {
            const at = nowUs();
            completed++;
            watch();
            if (shape === 'chain') {
              const index = Number(jobId.slice(1));
              learnt[index] = at;
              if (index + 1 < size) {
                queue.add('noop', { i: index + 1, previous: returnvalue }, { jobId: `j${index + 1}` }).catch(reject);
              } else resolve();
            } else if (shape === 'wide' ? completed === size : jobId === lastId) resolve();
          });
        });
        const started = nowUs();
        if (shape === 'wide') {
          await queue.addBulk(
            Array.from({ length: size }, (_, i) => ({ name: 'noop', data: { i }, opts: { jobId: `j${i}` } })),
          );
        } else if (shape === 'chain') {
          await queue.add('noop', { i: 0 }, { jobId: 'j0' });
        } else {
          // Job size - 1 is the root; each job's only child is the one before it, so job 0 runs first.
          const node = (i: number): FlowJob => ({
            name: 'noop',
            queueName: name,
            data: { i },
            opts: { jobId: `j${i}` },
          });
          let tree = node(0);
          for (let i = 1; i < size; i++) tree = { ...node(i), children: [tree] };
          await flows!.add(tree);
        }
        await done.finally(() => clearTimeout(stall));
        return { started, ended: nowUs(), learnt };
      } finally {
        await Promise.all([events.close(), queue.close(), flows?.close()]);
      }
    },
  });
} else {
  throw new Error(`usage: bullmq.ts worker|driver (got ${role})`);
}

process.stdout.write(`bullmq ${role} listening on http://127.0.0.1/ (ipc)\n`);
process.on('SIGTERM', () => process.exit(0));
