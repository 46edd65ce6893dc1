/**
 * The benchmarks' orchestrator: a real process running `startOrchestrator` with a join token and
 * an admin token (authentication on, as in production), the rate limits and the registry's
 * worker bound raised so that the load generators are not throttled or refused, and a pino logger at `info` on stderr like the CLI's.
 * With MPD_BENCH_PIPELINE it can run that pipeline on its workers when asked (IPC `run`),
 * timing every module with the monotonic clock.
 *
 * Environment: MPD_BENCH_HEARTBEAT_INTERVAL (s, default 30), MPD_BENCH_LOG_LEVEL (default info),
 * MPD_BENCH_PIPELINE (a pipeline file), MPD_BENCH_JOIN_TOKEN, MPD_BENCH_ADMIN_TOKEN,
 * MPD_BENCH_ARTIFACTS_DIR (the artifact store's directory), MPD_BENCH_LOGS_DIR (when set, the
 * runs take the modules' output and write each attempt's log under it), MPD_BENCH_OUTPUT_GRACE_MS
 * (the runs' `outputGraceMs`; default the runner's, 2 s).
 */
import { runPipeline, startOrchestrator } from '@mpd/orchestrator';
import { loadPipelineFile } from '@mpd/pipeline';
import { destination, pino } from 'pino';
import { processStats, serveIpc } from '../lib/ipc.js';

const intervalSeconds = Number(process.env.MPD_BENCH_HEARTBEAT_INTERVAL ?? 30);
const logger = pino(
  { name: 'mpd-orchestrator', level: process.env.MPD_BENCH_LOG_LEVEL ?? 'info' },
  destination({ dest: 2, sync: false }),
);
const pipeline = process.env.MPD_BENCH_PIPELINE ? await loadPipelineFile(process.env.MPD_BENCH_PIPELINE) : undefined;

const UNTHROTTLED = 1_000_000_000;
const orchestrator = await startOrchestrator({
  port: 0,
  host: '127.0.0.1',
  heartbeatIntervalSeconds: intervalSeconds,
  heartbeatTimeoutMs: intervalSeconds * 4_000,
  joinToken: process.env.MPD_BENCH_JOIN_TOKEN,
  adminToken: process.env.MPD_BENCH_ADMIN_TOKEN,
  rateLimits: {
    registerPerMinute: UNTHROTTLED,
    heartbeatPerMinute: UNTHROTTLED,
    authFailuresPerMinute: UNTHROTTLED,
    failedRequestsPerMinute: UNTHROTTLED,
  },
  // The scale benchmark registers 10,000 simulated workers, the default bound: room to spare.
  maxWorkers: UNTHROTTLED,
  ...(process.env.MPD_BENCH_ARTIFACTS_DIR ? { artifactsDir: process.env.MPD_BENCH_ARTIFACTS_DIR } : {}),
  logger,
});
process.stdout.write(`mpd bench orchestrator listening on ${orchestrator.url}\n`);

/** Per-module timings of one run, in µs after the run started (orchestrator's and workers' monotonic clocks). */
export interface RunTimings {
  status: string;
  /** The monotonic clock (`process.hrtime.bigint()`, ns, as text) when the run started: the time 0 of the µs below. */
  startedNs: string;
  /** The run's makespan as the orchestrator saw it (runPipeline call to result), ms. */
  makespanMs: number;
  /** Orchestrator CPU time during the run, ms. */
  cpuMs: number;
  modules: {
    name: string;
    workerId: string;
    attempts: number;
    /** When the last dependency's result was in (0 for a root). */
    depsDone: number;
    /** When the scheduler dispatched it (`module-started`). */
    dispatched: number;
    /** When `run` started on the worker (the worker's clock). */
    workerStart: number;
    /** How long it ran as its worker measured it (ms). */
    durationMs: number;
    /** When the orchestrator had its result (`module-finished`). */
    finished: number;
    /** Its result. */
    result: unknown;
    /** Its last attempt's log file (with MPD_BENCH_LOGS_DIR). */
    log: string | undefined;
  }[];
}

export interface RunRequest {
  minWorkers: number;
  /** Give the scheduler the durations of the previous run in this process as hints (as `--timings` does). */
  durationHints?: boolean;
  /** Run only the modules of these categories (`runOnlyCategories`). */
  categories?: string[];
}

async function waitForWorkers(count: number): Promise<void> {
  const enough = (): boolean =>
    orchestrator.registry
      .list()
      .filter((worker) => worker.status !== 'Offline' && worker.pipeline?.fingerprint === pipeline!.fingerprint)
      .length >= count;
  if (enough()) return;
  await new Promise<void>((resolve) => {
    const unsubscribe = orchestrator.registry.onChange(() => {
      if (enough()) {
        unsubscribe();
        resolve();
      }
    });
  });
}

/** Each module's duration in the latest run: what the CLI's `--timings FILE` would hold after it. */
let lastDurations: Record<string, number> = {};

async function run({ minWorkers, durationHints, categories }: RunRequest): Promise<RunTimings> {
  if (!pipeline) throw new Error('no MPD_BENCH_PIPELINE');
  await waitForWorkers(minWorkers);
  const dispatched = new Map<string, bigint>();
  const finished = new Map<string, bigint>();
  const cpuBefore = process.cpuUsage();
  const start = process.hrtime.bigint();
  const result = await runPipeline({
    pipeline,
    registry: orchestrator.registry,
    endpointPolicy: orchestrator.endpointPolicy,
    logger,
    ...(durationHints ? { durationHints: lastDurations } : {}),
    ...(categories ? { runOnlyCategories: categories } : {}),
    ...(process.env.MPD_BENCH_OUTPUT_GRACE_MS ? { outputGraceMs: Number(process.env.MPD_BENCH_OUTPUT_GRACE_MS) } : {}),
    ...(process.env.MPD_BENCH_LOGS_DIR
      ? { executionLogs: orchestrator.executionLogs, logsDir: process.env.MPD_BENCH_LOGS_DIR }
      : {}),
    onEvent: (event) => {
      if (event.type === 'module-started') dispatched.set(event.module, process.hrtime.bigint());
      else if (event.type === 'module-finished') finished.set(event.module, process.hrtime.bigint());
    },
  });
  const end = process.hrtime.bigint();
  const cpu = process.cpuUsage(cpuBefore);
  lastDurations = Object.fromEntries(
    result.modules.flatMap((module) => (module.durationMs === undefined ? [] : [[module.name, module.durationMs]])),
  );
  const us = (time: bigint | undefined): number => (time === undefined ? Number.NaN : Number(time - start) / 1_000);
  return {
    status: result.status,
    startedNs: start.toString(),
    makespanMs: Number(end - start) / 1e6,
    cpuMs: (cpu.user + cpu.system) / 1_000,
    modules: result.modules.map((module) => {
      let depsDone = 0;
      for (const dependency of pipeline.dependencies.get(module.name) ?? []) {
        depsDone = Math.max(depsDone, us(finished.get(dependency)));
      }
      const t = (module.result as { t?: string } | undefined)?.t;
      return {
        name: module.name,
        workerId: module.workerId ?? '',
        attempts: module.attempts.length,
        depsDone,
        dispatched: us(dispatched.get(module.name)),
        workerStart: t === undefined ? Number.NaN : us(BigInt(t)),
        durationMs: module.durationMs ?? Number.NaN,
        finished: us(finished.get(module.name)),
        result: module.result,
        log: module.attempts.at(-1)?.log,
      };
    }),
  };
}

serveIpc({
  stats: () => processStats(),
  workers: () => orchestrator.registry.list().length,
  run: (payload: RunRequest) => run(payload),
});

process.on('SIGTERM', () => {
  void orchestrator.close().finally(() => process.exit(0));
});
