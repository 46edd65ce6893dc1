/**
 * The test processes' node flags, in a module of their own that imports nothing: the vitest
 * configs (`packages/worker/vitest.config.ts`, `tests/integration/vitest.config.ts`) import it
 * by its path (a config's bare imports are loaded by node, which cannot load a `.ts` file) to
 * give their test files' processes the flags `spawnProcess` gives the CLIs, from one table.
 */

/**
 * V8 flags by V8 major version (`process.versions.v8`) for every node process the kit starts
 * (`spawnProcess`, `asTsxLoads`), before their `--import` of tsx's loaders; a version not listed
 * gets none (a V8 flag the running V8 does not know stops node: "bad option", exit 9).
 * - V8 11 (Node 20): `--interrupt-budget=1081344`, V8's tier-up looked at 16 times later (the
 *   default is 67,584 bytes of bytecode run), the value a module host sets in itself
 *   (`worker/src/executor/host-v8-flags.ts`). Why: a process a test starts runs for seconds and
 *   spends most of its CPU loading tsx and the servers' code; with V8's defaults the optimising
 *   compiler works on that start-up code on background threads, and the CPU is not earned back.
 *   Measured (`docs/round-t/t4.md`): an orchestrator CLI start to "listening" 1.9 s of CPU with
 *   the defaults, 1.5 s with it; `node --import tsx` of an empty file 0.70 s, 0.55 s with
 *   `--no-opt`. Tier-up changes when code is compiled, never what it does.
 * - A worker started so passes the flag on to its module hosts (their node flags are the
 *   worker's), which then leave out their own (the same value): a host's tier-up is delayed
 *   from its first line instead of from its first own import.
 * - Tests of the user-facing command itself (`pnpm orchestrator`, the installed `mpd`) start
 *   it through `pnpm` or the installed binary, not through the kit, and keep V8's defaults.
 */
export const TEST_NODE_FLAGS: Readonly<Record<number, readonly string[]>> = {
  11: ['--interrupt-budget=1081344'],
};

/**
 * The node flags the kit gives a process under V8 `v8Version` (default: this process's V8,
 * `process.versions.v8`, e.g. `11.3.244.8-node.33`): {@link TEST_NODE_FLAGS}'s entry for its major
 * version, none for another.
 */
export function testNodeFlags(v8Version: string = process.versions.v8): readonly string[] {
  const major = /^(\d+)\./.exec(v8Version)?.[1];
  return (major !== undefined && TEST_NODE_FLAGS[Number(major)]) || [];
}
