/**
 * A module host's preload (`node --import THIS module-host-main.{ts,js} --v8-flags=FLAGS`, as
 * `src/executor/module-host.ts` starts every host), in plain JavaScript so that it runs before
 * any TypeScript is loaded. It does two things, in this order:
 *
 * 1. Sets the host's V8 flags (`src/executor/host-v8-flags.ts`: its tier-up delayed), given by
 *    the worker as one argument after the host's script (`--v8-flags=` and the flags,
 *    space-separated), with `v8.setFlagsFromString`, before tsx and esbuild are loaded: with
 *    V8's defaults their start-up code was compiled by the optimising tiers on background
 *    threads (round V, `docs/round-v/v5.md`: ~0.2 s of CPU a start), which the flag, set at the
 *    host's first own import as before, came too late to spare. Only in a module host (this
 *    process's main script is `module-host-main.ts`/`.js`): a node child a module forks gets
 *    this preload in its `execArgv` too, and keeps V8's defaults (the flags are never given on
 *    the command line, see `host-v8-flags.ts`). A flag V8 does not take is skipped (V8 prints a
 *    line on stderr and goes on).
 * 2. Registers tsx's loaders as `node --import tsx` does, from the same tsx — its CommonJS hooks
 *    (`tsx/cjs`) on this thread, then its ES-module hooks (`tsx/esm`) on node's loader-hooks
 *    thread, with no options — without importing tsx's ES-module build on this thread only to
 *    call `module.register` (`@mpd/cli`'s `tsx-loader.mjs` does the same; round V measured
 *    ~0.1 s of CPU less a host). Every file is transformed by the same code with the same
 *    options, so a module's code text, which the module digests hash, is the one the worker's
 *    own load gives (tested: `packages/cli/test/tsx-loader.spec.ts`). On a Node with
 *    `module.registerHooks` (22.15+; tsx 4.23 uses in-thread hooks from 22.22.3/24.11.1) tsx's
 *    own entry is imported instead.
 *
 *    When the host's main script is JavaScript (`module-host-main.js`: an installed `@mpd/worker`),
 *    not here: the host registers them itself once its own modules are loaded, just before it
 *    loads the pipeline file (`registerTypeScriptLoaders`, called by `module-host-main`'s `init`),
 *    so that its own code and its libraries do not go through tsx's hooks (round AD: an installed
 *    host until ready, 587 ms of CPU before, 530 after, medians of 10 alternating pairs;
 *    `docs/round-ad/lead.md`). From the sources (`module-host-main.ts`) and in
 *    every other process this preload reaches (a node child a module forks has it in its
 *    `execArgv`), here as before: they need it for their own first file.
 */
import module, { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';

const FLAGS_ARGUMENT = '--v8-flags=';
const isHost = /[/\\]module-host-main\.[jt]s$/.test(process.argv[1] ?? '');
const given = isHost ? process.argv.slice(2).find((arg) => arg.startsWith(FLAGS_ARGUMENT)) : undefined;
for (const flag of (given ?? '').slice(FLAGS_ARGUMENT.length).split(' ')) {
  if (flag === '') continue;
  try {
    setFlagsFromString(flag);
  } catch {
    // not a flag V8 takes: the host runs with V8's default for it
  }
}

/** Set once tsx's loaders are registered in this process (by any copy of this file). */
const REGISTERED = Symbol.for('mpd.module-host-loader.registered');

/**
 * Registers tsx's loaders in this process as `node --import tsx` does (see 2. above), once: a
 * later call does nothing.
 * @returns {Promise<void>}
 */
export async function registerTypeScriptLoaders() {
  if (globalThis[REGISTERED]) return;
  globalThis[REGISTERED] = true;
  if (typeof module.registerHooks === 'function') {
    await import('tsx');
  } else {
    createRequire(import.meta.url)('tsx/cjs');
    // tsx's `initialize` hook requires a `data` object (none: "tsx must be loaded with --import").
    module.register('tsx/esm', import.meta.url, { data: {} });
  }
}

/**
 * Whether this preload registers tsx's loaders at once: everywhere but in a module host whose main
 * script is JavaScript (`module-host-main.js`), which registers them itself before it loads the
 * pipeline file.
 * @param {string | undefined} mainScript the process's main script (`process.argv[1]`)
 * @returns {boolean}
 */
function registersAtOnce(mainScript) {
  return !/[/\\]module-host-main\.js$/.test(mainScript ?? '');
}

if (registersAtOnce(process.argv[1])) await registerTypeScriptLoaders();
