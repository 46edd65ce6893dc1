/**
 * How a module host loads TypeScript: with `@mpd/worker/tsx-loader` (`packages/worker/tsx-loader.mjs`,
 * tsx's own hooks without tsx's ES-module build on the host's main thread; round V, V5), once,
 * and never tsx's own entry beside it (a file compiled twice changes its text and the module
 * digests). The host here runs a module of a pipeline whose digests the worker took as
 * `node --import tsx` loads it (`asTsxLoads` in `moduleHostsSpec`), so the run also shows both
 * loaders give the same digest (a host refuses a module whose digest differs from the worker's).
 * Every loader-sameness case for every pipeline of the repo: `packages/cli/test/tsx-loader.spec.ts`.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { moduleHostsSpec } from '../../test/module-hosts-spec.js';
import { resultOf } from '../../test/hosted-executors.js';

const { executor, run } = moduleHostsSpec();
const LOADER = fileURLToPath(new URL('../../tsx-loader.mjs', import.meta.url));

/** The command line of live process `pid` (`/proc/PID/cmdline`). */
const commandLine = (pid: number): string[] => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);

describe('a module host', () => {
  it('is started with @mpd/worker/tsx-loader once and no other tsx entry, and runs a module whose digest the worker took under `--import tsx`', async () => {
    const on = executor();
    const outcome = await run(on, 'echo');
    expect(outcome.status).toBe(200); // the host's digest of `echo` is the worker's
    const hostPid = (resultOf(outcome) as { pid: number }).pid;
    const args = commandLine(hostPid);
    const imports = args.flatMap((arg, index) => (arg === '--import' ? [args[index + 1]!] : []));
    expect(imports.filter((value) => /tsx/.test(value)).map((value) => fileURLToPath(value))).toEqual([LOADER]);
    expect(args.filter((arg) => /tsx/.test(arg) && !arg.includes('tsx-loader.mjs'))).toEqual([]);
  });
});
