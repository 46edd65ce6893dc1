/**
 * The scheduler's own cost: runs a pipeline in this process with `runPipeline` on an
 * in-memory registry of simulated workers, each registered with the pipeline's module list as a
 * real worker is. One simulated client answers every execute at once (on the next turn of the
 * event loop), so nothing but the scheduler and its bookkeeping costs CPU: the ready queue,
 * concurrency rules, placement, attempts, results, events (a progress listener is attached) and
 * info logs (written to /dev/null). A real run makes an HTTP client per worker: that cost is
 * the dispatch's, which benchmark 2 measures.
 */
import type { WorkerClient } from '@mpd/client';
import { InMemoryNodeRegistry, runPipeline } from '@mpd/orchestrator';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { instantWorkerClient } from '@mpd/test-kit';
import { destination, pino } from 'pino';
import { buildDag } from '../lib/dag.js';
import { serveIpc } from '../lib/ipc.js';

interface SchedulerRun {
  size: number;
  workers: number;
  slots: number;
  seed: number;
}

export interface SchedulerTimings {
  modules: number;
  cpuMs: number;
  wallMs: number;
  status: string;
}

const logger = pino({ level: 'info' }, destination({ dest: '/dev/null', sync: false }));

async function run({ size, workers, slots, seed }: SchedulerRun): Promise<SchedulerTimings> {
  const nodes = buildDag({ shape: 'random', size, seed, minMs: 0, maxMs: 0 });
  const pipeline = definePipeline({
    name: `scheduler-${size}`,
    modules: nodes.map((node) => defineModule({ name: node.name, dependsOn: node.dependsOn, run: () => null })),
  });
  const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 600_000 });
  for (let index = 0; index < workers; index++) {
    registry.register({
      id: `sim-${index}`,
      endpoint: `http://127.0.0.1:${20_000 + index}`,
      capabilities: { os: 'linux', installedTools: ['node'], maxParallelModules: slots, tags: [] },
      pipeline: { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: [...pipeline.modules.keys()] },
    });
  }
  const client = instantWorkerClient({
    serializedResult: '{"t":"0"}',
    duration: '00:00:00.0010000',
    workerId: 'simulated',
  }) as unknown as WorkerClient;
  let events = 0;
  // Registering thousands of workers leaves garbage: collect it now, not on the scheduler's time.
  (globalThis as { gc?: () => void }).gc?.();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const result = await runPipeline({
    pipeline,
    registry,
    logger,
    onEvent: () => void events++,
    createClient: () => client,
  });
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  return { modules: size, cpuMs: (cpu.user + cpu.system) / 1_000, wallMs, status: result.status };
}

serveIpc({ run: (payload: SchedulerRun) => run(payload) });
process.stdout.write('scheduler bench listening on http://127.0.0.1/ (ipc)\n');
process.on('SIGTERM', () => process.exit(0));
