/** An orchestrator (bench server) and worker CLIs loading the bench pipeline, all real processes. */
import type { RunTimings } from '../servers/orchestrator.js';
import { type DagSpec, dagEnv } from './dag.js';
import {
  ADMIN_TOKEN,
  BENCH_PIPELINE,
  BenchProcess,
  JOIN_TOKEN,
  ORCHESTRATOR_SERVER,
  startWorkerCli,
} from './processes.js';

export interface BenchCluster {
  orchestrator: BenchProcess;
  workers: { process: BenchProcess; url: string; slots: number }[];
  /**
   * Runs the pipeline once on the workers (they stay up for the next run); with
   * `durationHints`, the scheduler gets the previous run's module durations, as `--timings` gives them.
   */
  run(options?: { durationHints?: boolean }): Promise<RunTimings>;
  stop(): Promise<void>;
}

/**
 * Starts the orchestrator and `workerCount` worker CLIs with `slots` slots each; `isolation` is
 * the workers' `--isolation` (their default, module hosts, when not given).
 */
export async function startCluster(
  spec: DagSpec,
  workerCount: number,
  slots: number,
  { isolation }: { isolation?: 'process' | 'none' } = {},
): Promise<BenchCluster> {
  const env = dagEnv(spec);
  const orchestrator = new BenchProcess('orchestrator', ORCHESTRATOR_SERVER, [], {
    ...env,
    MPD_BENCH_PIPELINE: BENCH_PIPELINE,
    MPD_BENCH_JOIN_TOKEN: JOIN_TOKEN,
    MPD_BENCH_ADMIN_TOKEN: ADMIN_TOKEN,
  });
  const workers: BenchCluster['workers'] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(workers.map((worker) => worker.process.stop()));
    await orchestrator.stop();
  };
  try {
    const url = await orchestrator.listeningUrl(60_000);
    const processes = Array.from({ length: workerCount }, (_, index) =>
      startWorkerCli({
        id: `bench-worker-${index + 1}`,
        orchestratorUrl: url,
        slots,
        env,
        ...(isolation ? { isolation } : {}),
      }),
    );
    for (const process of processes) workers.push({ process, url: await process.listeningUrl(60_000), slots });
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    orchestrator,
    workers,
    run: (options = {}) =>
      orchestrator.request<RunTimings>('run', {
        minWorkers: workerCount,
        durationHints: options.durationHints ?? false,
      }),
    stop,
  };
}
