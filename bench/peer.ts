/**
 * The dispatch benchmark's peer (issue 14): BullMQ on Redis, the queue a TypeScript team would
 * weigh mpd against, measured in the same run on the same shapes. Redis 7 (Debian's, started by
 * the bench, persistence off), a driver process (adds the jobs, learns of completions through
 * `QueueEvents`) and as many BullMQ worker processes as mpd has workers, each with mpd's slots
 * as its `concurrency`. See bench/servers/bullmq.ts for the shapes. `sandboxed` runs the same
 * jobs with BullMQ's own isolation (a processor file run in child processes of each worker):
 * the workers' CPU then includes their children's.
 */
import { randomBytes } from 'node:crypto';
import type { DriverTimings, JobSpan, PeerShape } from './servers/bullmq.js';
import { BenchProcess, benchPath, cpuMsOf } from './lib/processes.js';
import { type RedisServer, type RedisUnavailable, startRedis } from './lib/redis.js';
import type { RunTotals } from './cli-path.js';
import { chainHops, slotFreedAt, slotTurnarounds, type Span } from './lib/spans.js';

const SERVER = benchPath('servers/bullmq.ts');

/** CPU time by process of the peer, ms: the driver, the workers together (with their sandboxed children), Redis. */
export interface PeerSplit {
  driver: number;
  workers: number;
  redis: number;
}

/** One run's figures: per job, ms unless named otherwise. */
export interface PeerFigures {
  jobsPerSecond: number;
  /** Ready (added, a slot free; in a chain: the previous job's completion learnt) → processor started. */
  readyToStart: number[];
  /** See {@link slotTurnarounds}. */
  turnaround: number[];
  /** Chains: a job's processor ended → the next one's started. */
  hops: number[];
  /** CPU time per job of each process, ms: the driver, the workers together (with their sandboxed children), Redis. */
  cpuMs: PeerSplit & { total: number };
}

/** Redis, a driver and the BullMQ workers, started once for several runs. */
export class BullmqPeer {
  private constructor(
    private readonly redis: RedisServer,
    private readonly driver: BenchProcess,
    private readonly workers: BenchProcess[],
    private readonly slots: number,
  ) {}

  /**
   * Starts the peer, or says why not (no Redis: `{ unavailable }`, a line to print).
   * @throws when a BullMQ process does not start (its output in the message)
   */
  static async start(workers: number, slots: number): Promise<BullmqPeer | RedisUnavailable> {
    const redis = await startRedis();
    if ('unavailable' in redis) return redis;
    const env = { MPD_BENCH_REDIS_PORT: String(redis.port), MPD_BENCH_BULLMQ_CONCURRENCY: String(slots) };
    const processes = [
      new BenchProcess('bullmq-driver', SERVER, ['driver'], env),
      ...Array.from(
        { length: workers },
        (_, index) => new BenchProcess(`bullmq-worker-${index}`, SERVER, ['worker'], env),
      ),
    ];
    try {
      await Promise.all(processes.map((process) => process.listeningUrl()));
    } catch (error) {
      await Promise.all(processes.map((process) => process.stop()));
      await redis.stop();
      throw error;
    }
    return new BullmqPeer(redis, processes[0]!, processes.slice(1), slots);
  }

  /**
   * Runs `size` no-op jobs of `shape` on a fresh queue; `sandboxed`: in child processes of the
   * workers (BullMQ's sandboxed processors, started before the run).
   */
  async run(shape: PeerShape, size: number, { sandboxed = false }: { sandboxed?: boolean } = {}): Promise<PeerFigures> {
    const queue = `bench-${shape}-${randomBytes(4).toString('hex')}`;
    await Promise.all(this.workers.map((worker) => worker.request('start', { queue, sandboxed })));
    const cpu = () => ({
      driver: this.driver.cpuMs(),
      workers: cpuMsOf(this.workers),
      redis: this.redis.cpuMs(),
    });
    const before = cpu();
    const timings = await this.driver.request<DriverTimings>('run', { queue, shape, size });
    const after = cpu();
    const spansOf = await Promise.all(this.workers.map((worker) => worker.request<JobSpan[]>('stop')));
    const spans: (Span & { index: number })[] = spansOf.flatMap((own, worker) =>
      own.map(([index, start, end]) => ({ worker: String(worker), index, start, end })),
    );
    if (spans.length !== size) throw new Error(`BullMQ ran ${spans.length} of ${size} jobs`);
    spans.sort((a, b) => a.index - b.index);
    const perJob = (key: 'driver' | 'workers' | 'redis') => (after[key] - before[key]) / size;
    const cpuMs = { driver: perJob('driver'), workers: perJob('workers'), redis: perJob('redis'), total: 0 };
    cpuMs.total = cpuMs.driver + cpuMs.workers + cpuMs.redis;
    let readyToStart: number[];
    if (shape === 'chain') {
      readyToStart = spans.slice(1).map((span) => (span.start - timings.learnt[span.index - 1]!) / 1_000);
    } else if (shape === 'flow') {
      // Redis moves a parent to the wait list in the script that completes its child.
      readyToStart = chainHops(spans);
    } else {
      readyToStart = wideReadyToStart(spans, this.slots, timings.started);
    }
    return {
      jobsPerSecond: size / ((timings.ended - timings.started) / 1e6),
      readyToStart,
      turnaround: shape === 'wide' ? slotTurnarounds(spans, this.slots) : [],
      hops: shape === 'wide' ? [] : chainHops(spans),
      cpuMs,
    };
  }

  /**
   * Runs of `sizes` jobs of `shape`, each on a fresh peer (Redis, the driver and the workers
   * started for it and stopped after it), as benchmark 2 runs mpd's CLIs (bench/cli-path.ts):
   * per run its jobs, its duration (the driver's) and the CPU its processes used over their
   * whole lives until the run ended, in all and by process, so that the difference of two runs
   * is what the extra jobs cost, warm-up included or not. Or why there is no Redis.
   */
  static async freshRuns(
    shape: PeerShape,
    sizes: readonly number[],
    workers: number,
    slots: number,
  ): Promise<RunTotals<PeerSplit>[] | RedisUnavailable> {
    const totals: RunTotals<PeerSplit>[] = [];
    for (const size of sizes) {
      const peer = await BullmqPeer.start(workers, slots);
      if ('unavailable' in peer) return peer;
      try {
        const figures = await peer.run(shape, size);
        const split = {
          driver: peer.driver.cpuMs(),
          workers: cpuMsOf(peer.workers),
          redis: peer.redis.cpuMs(),
        };
        totals.push({
          modules: size,
          durationMs: (size / figures.jobsPerSecond) * 1_000,
          cpuMs: split.driver + split.workers + split.redis,
          split,
        });
      } finally {
        await peer.stop();
      }
    }
    return totals;
  }

  async stop(): Promise<void> {
    await Promise.all([this.driver.stop(), ...this.workers.map((worker) => worker.stop())]);
    await this.redis.stop();
  }
}

/** Wide: a job is ready when it was added (the driver's start) and a slot of its worker was free, ms. */
function wideReadyToStart(spans: readonly Span[], slots: number, added: number): number[] {
  const freedAt = slotFreedAt(spans, slots);
  return spans.map((span, index) => (span.start - Math.max(added, freedAt[index] ?? added)) / 1_000);
}
