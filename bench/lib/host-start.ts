/**
 * One module host start, for `cli-start.ts`'s `module-host-ready` case: run as
 * `node --import tsx bench/lib/host-start.ts CHECKOUT` (this file's own copy, the same for every
 * checkout), it starts CHECKOUT's `ModuleHost` (packages/worker/src/executor/module-host.ts, as
 * the worker starts one: its own process group, `module-host-loader.mjs`, the bench pipeline
 * loaded) and, once the host said it is ready, prints one JSON line: the host's pid and the CPU
 * of its threads (`/proc/PID/task/*\/schedstat`, ms; the host's own process only, not this one),
 * then kills its process group.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { threadsCpuMs } from './proc-times.js';

const root = process.argv[2];
if (root === undefined) throw new Error('usage: host-start.ts CHECKOUT');
const { ModuleHost } = (await import(
  pathToFileURL(join(root, 'packages/worker/src/executor/module-host.ts')).href
)) as typeof import('../../packages/worker/src/executor/module-host.js');

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
const host = new ModuleHost({
  sourceFile: join(root, 'bench/pipelines/bench.pipeline.ts'),
  moduleDigest: () => '',
  killGraceMs: 5_000,
  heapLimitMb: undefined,
  logger: silent as never,
  workerId: 'bench',
  maxResultBytes: 16 * 1024 * 1024,
  inlineResultBytes: 64 * 1024,
});
await host.ready;
process.stdout.write(`${JSON.stringify({ pid: host.pid, cpuMs: threadsCpuMs(host.pid) })}\n`);
// Its own process group (as the worker starts it): killed with everything in it.
process.kill(-host.pid, 'SIGKILL');
process.exit(0);
