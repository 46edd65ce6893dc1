/**
 * tsx's loaders for this process, registered as `node --import tsx` registers them, for less CPU
 * at a process's start: imported by `mpd` (`@mpd/cli`'s `registerTypeScript`) when it loads a
 * `.ts` pipeline, and by the test kit's `spawnProcess` for every CLI a test starts;
 * `node --import ./packages/cli/tsx-loader.mjs FILE.ts` works the same. The module hosts register
 * the same way from their own preload (`@mpd/worker`'s `module-host-loader.mjs`, round X); the
 * root's `pnpm orchestrator`/`pnpm worker` keep `--import tsx` (`docs/round-v/v5.md`).
 *
 * The same two registrations as tsx's own entry (`tsx/dist/loader.mjs`), from the same tsx:
 * its CommonJS hooks (`tsx/cjs`: a `.ts` file `require`d; source maps on) on this thread, then its
 * ES-module hooks (`tsx/esm`) on node's loader-hooks thread, with no options (tsx then reads
 * `TSX_TSCONFIG_PATH` or looks the tsconfig up, as under `--import tsx`). Every file is
 * transformed by the same code with the same options, so a module's code text — which the
 * pipeline's fingerprint and module digests hash — is the same as under `--import tsx`
 * (tested for every pipeline file in the repo: `test/tsx-loader.spec.ts`). Import
 * it only in a process not under tsx already (`registerTypeScript` checks): registered twice, tsx
 * may transform a file twice (see `registerTypeScript`).
 *
 * What it leaves out: tsx's entry also imports tsx's ES-module build on the main thread only to
 * call `module.register` from it; importing esbuild from there makes node lex esbuild's 97 KB
 * CommonJS `main.js` for its export names, and V8's optimising compiler then works on that
 * lexer on background threads. Measured on Node 20 only, in bench-lock holds
 * (`docs/round-v/v5.md`): an `mpd`-style start to `listening` took 0.147 s and 0.187 s less CPU
 * (the medians of two holds; their pooled mean 0.155 s less); 0.07–0.16 s for the CLIs started
 * with it, ~0.1 s for a module host; under V8's default flags, none under the tests'
 * `--interrupt-budget`. On Node 22.15 and later it saves nothing (below).
 *
 * Node with `module.registerHooks` (22.15+; tsx 4.23 uses it from 22.22.3 and 24.11.1, with no
 * hooks thread): tsx's own entry is imported instead, so the process loads, and spends, as
 * under `--import tsx` there.
 */
import module, { createRequire } from 'node:module';

if (typeof module.registerHooks === 'function') {
  await import('tsx');
} else {
  createRequire(import.meta.url)('tsx/cjs');
  // tsx's `initialize` hook requires a `data` object (none: "tsx must be loaded with --import").
  module.register('tsx/esm', import.meta.url, { data: {} });
}
