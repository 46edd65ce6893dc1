/**
 * The setup both held-execute specs share (round N, N3, 3 and 6): a module whose first execute
 * call to `w-one` is held on its way (test-kit's FaultProxy `hold-requests`) while `w-one` is made
 * Offline (its heartbeats held by a proxy of their own), its attempt abandoned and its cancel
 * answered 404 (it ran nothing), and the module started on `w-two`. The caller heals `proxy` to
 * let the held call arrive, then opens `release` to let `w-two`'s run end.
 */
import { runPipeline, type RunEvent, type RunResult } from '@mpd/orchestrator';
import { defineModule, definePipeline, type Pipeline } from '@mpd/pipeline';
import { type FaultProxy, startFaultProxy } from '@mpd/test-kit';
import { expect } from 'vitest';
import type { Cluster } from './cluster.js';
import { capturingLogger } from './capturing-logger.js';
import { gate } from './module-gate.js';

/** What {@link abandonWithHeldExecute} leaves the test: the run goes on, its module on `w-two`, waiting at `release`. */
export interface HeldExecute {
  pipeline: Pipeline;
  /** Forwards to `w-one`'s API, the first execute held until `heal()`; `setTarget` points it at a restarted `w-one`. */
  proxy: FaultProxy;
  one: Awaited<ReturnType<Cluster['startWorker']>>;
  /** The workers the module started on, in order (`['w-two']` when this returns). */
  starts: string[];
  release: { open: () => void };
  running: Promise<RunResult>;
  /** The run's log lines (debug). */
  lines: Array<Record<string, unknown>>;
  /** The abandoned attempt's execution id (the held call's). */
  executionId: string;
}

/**
 * Builds that state on `cluster` (its orchestrator started here): one module `work` of pipeline
 * `name`. `credentialFile`: `w-one`'s. Proxies closed through `cleanups`.
 */
export async function abandonWithHeldExecute(
  cluster: Cluster,
  cleanups: Array<() => Promise<unknown>>,
  { name, credentialFile }: { name: string; credentialFile?: string },
): Promise<HeldExecute> {
  const starts: string[] = [];
  const release = gate();
  const work = defineModule({
    name: 'work',
    run: async (ctx) => {
      starts.push(ctx.workerId);
      await release.wait;
      return { workerId: ctx.workerId };
    },
  });
  const pipeline = definePipeline({ name, modules: [work] });
  const orchestrator = await cluster.startOrchestrator();
  const proxy = await startFaultProxy();
  cleanups.push(() => proxy.close());
  // w-one's calls to the orchestrator go through a proxy of their own, which the test holds: it
  // goes Offline without a race, and an unregister of its never arrives (as after a crash).
  const beats = await startFaultProxy({ port: Number(new URL(orchestrator.url).port) });
  cleanups.push(() => beats.close());
  const one = await cluster.startWorker({
    id: 'w-one',
    pipeline,
    endpoint: proxy.url,
    orchestratorUrl: beats.url,
    credentialFile,
  });
  proxy.setTarget({ port: Number(new URL(one.url).port) });
  await one.link!.registered();
  // The first execute call to w-one is held on its way, until the proxy is healed.
  proxy.faultNext({ kind: 'hold-requests' }, /^POST \/api\/execution\/execute/);

  const events: RunEvent[] = [];
  const { logger, lines } = capturingLogger();
  const running = runPipeline({
    pipeline,
    registry: orchestrator.registry,
    logger,
    onEvent: (event) => events.push(event),
  });
  await expect.poll(() => events.some((event) => event.type === 'module-started'), { timeout: 20_000 }).toBe(true);
  const executionId = events.find((event) => event.type === 'module-started')!.executionId;
  const two = await cluster.startWorker({ id: 'w-two', pipeline });
  await two.link!.registered();
  // w-one goes Offline: its attempt is lost and cancelled; w-one runs nothing, so it answers 404.
  beats.fault({ kind: 'hold-requests' });
  // Again until it holds: a heartbeat already past the proxy may land after the clock moved.
  await expect
    .poll(
      () => {
        cluster.expireAllBut(two);
        return orchestrator.registry.get('w-one')?.status;
      },
      { timeout: 20_000 },
    )
    .toBe('Offline');
  // w-one answers the cancel 404 and keeps a tombstone, in memory.
  await expect
    .poll(
      () =>
        lines.some(
          (line) => line.msg === 'cancel acknowledged' && line.executionId === executionId && line.status === 404,
        ),
      { timeout: 20_000 },
    )
    .toBe(true);
  await expect.poll(() => starts, { timeout: 20_000 }).toEqual(['w-two']);
  return { pipeline, proxy, one, starts, release, running, lines, executionId };
}
