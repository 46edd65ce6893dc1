/**
 * Makes this process load TypeScript: a pipeline file may be `pipeline.ts` with nothing but
 * `@mpd/cli` installed (no `tsx` on the command line, no build step of the user's own).
 */
/**
 * Whether node was started with tsx's loaders registered already, from its node flags `execArgv`
 * (@default `process.execArgv`): `--import tsx`, the `tsx` command, `tsx-loader.mjs` (the
 * workspace's tests, `spawnProcess`), or a module host's preload `module-host-loader.mjs`
 * (`@mpd/worker`, which registers tsx's loaders after its V8 flags; round X, X1), which a node
 * forked by a module inherits.
 */
export const startedWithTsx = (execArgv: readonly string[] = process.execArgv): boolean =>
  execArgv.some((arg) => /tsx|module-host-loader\.mjs/.test(arg));

/**
 * Registers tsx's loaders in this process, both of them, as `node --import tsx` does: the ES
 * module hooks (a `.ts` file `import`ed) and the CommonJS ones (a `.ts` file `require`d, as an
 * ESM-syntax pipeline in a package without `"type": "module"` is compiled to), through
 * `tsx-loader.mjs` (beside `src` and `dist`: tsx's own hooks without tsx's ES-module build
 * on this thread; measured on Node 20 only, `docs/round-v/v5.md`: 0.147 s and 0.187 s of CPU
 * less per `mpd`-style start, the medians of two holds, pooled mean 0.155 s; on Node 22.15 and
 * later, which have `module.registerHooks`, it imports tsx's own entry and saves nothing). Only imports made once it
 * resolved are affected. Does nothing when node runs under tsx already ({@link startedWithTsx}: tsx's own
 * loader, `tsx-loader.mjs` or a module host's preload): registered twice, tsx
 * transforms a file twice, and the functions' text changes (esbuild's `__name` helper becomes
 * `__name2`), so the pipeline's fingerprint (made from that text) would no longer match the one
 * the worker's module hosts compute (their preload registers tsx once): every module would fail with
 * "Pipeline file … changed since the worker loaded it". Tested (`test/tsx-loader.spec.ts`): this entry, `--import tsx` and this function give every pipeline file in the
 * repo the same fingerprint and module digests.
 */
export async function registerTypeScript(): Promise<void> {
  if (startedWithTsx()) return;
  // Imported here, not at the top: tsx loads esbuild; `mpd --help` and a subcommand's `--help`
  // or bad setting never get here (see `beforeLoad`).
  await import(new URL('../tsx-loader.mjs', import.meta.url).href);
}
