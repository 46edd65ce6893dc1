/**
 * The benchmarks' pipeline, built from MPD_BENCH_* environment variables (see `dagEnv`): the
 * orchestrator and the workers load this file with the same variables, so they get the same
 * modules and fingerprint. Every module returns `{ t }`, the worker's monotonic clock
 * (`process.hrtime`, nanoseconds, shared by every process on the machine) when `run` started:
 * the driver compares it with the orchestrator's clock to time the dispatch leg.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { buildDag, dagSpecFromEnv } from '../lib/dag.js';

const spec = dagSpecFromEnv();

const modules = buildDag(spec).map((node) =>
  defineModule({
    name: node.name,
    dependsOn: node.dependsOn,
    params: { sleepMs: node.sleepMs },
    run: async (ctx) => {
      const t = process.hrtime.bigint().toString();
      const { sleepMs } = ctx.params as { sleepMs: number };
      if (sleepMs > 0) await sleep(sleepMs, undefined, { signal: ctx.signal });
      return { t };
    },
  }),
);

export default definePipeline({ name: `bench-${spec.shape}-${spec.size}`, modules });
