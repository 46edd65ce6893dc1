/**
 * The V8 flags a module host sets in itself as it starts: the worker gives them to the host as an
 * argument (`hostArguments`, `module-host.ts`), and the host's preload (`module-host-loader.mjs`,
 * its `--import`) sets them before tsx or any code of the host is loaded (before round X they
 * were set at the host's first own import, after tsx loaded: tsx's and esbuild's start-up code
 * ran with V8's defaults, `docs/round-x/x1.md`): its JavaScript is optimised later than V8's
 * defaults would.
 *
 * Why (issue 14, round K's K1 and K7, round L's L1: `docs/round-l/l1.md`): a host runs the same
 * short per-module path (channel message in, module context, result out) a few hundred times in
 * its life when a worker's slots share a run's modules (~125 modules a host for 2,000 modules on
 * 2 workers × 8 slots). With V8's defaults that path is compiled by the optimising tiers early,
 * on V8's background threads, and the CPU they spend is not earned back over so few calls; with
 * the tier-up delayed 16 times it mostly runs in Sparkplug's baseline code, and a host costs
 * less CPU a module. The orchestrator and the worker keep V8's defaults: they run the per-module
 * path of every module, and there the delay cost more than it saved (K7).
 *
 * The flags are set with `v8.setFlagsFromString`, never given on the host's command line: a
 * command-line flag is in `process.execArgv`, which `child_process.fork` passes on, so every node
 * child a module forks (a test runner's workers) would start with its tier-up delayed too; and a
 * V8 flag the running V8 does not know is fatal there ("bad option", exit 9), while
 * `setFlagsFromString` prints a line on stderr and goes on.
 */
/**
 * The flags by V8 major version (`process.versions.v8`); a version not listed gets none (V8's
 * defaults), and so does one listed with none.
 * - V8 11 (Node 20): `--interrupt-budget`, in bytes of bytecode run before a function's tier-up
 *   is looked at: 16 times the default (67,584 = 66 KiB), measured through the CLIs (L1).
 * - V8 12 (Node 22) and 13 (Node 24) have no `--interrupt-budget`: the tier-up is counted in calls
 *   of a function (`--invocation-count-for-maglev`, default 400, Maglev on by default in Node 24
 *   only; `--invocation-count-for-turbofan`, default 3,000). 16 times those
 *   (`--invocation-count-for-maglev=6400 --invocation-count-for-turbofan=48000`) delay a host's
 *   tier-up as 16 times the budget does on V8 11 (`docs/round-l/l1.md`), but what that does to a
 *   run's CPU was not measured through the CLIs yet: none until it is.
 */
export const HOST_V8_FLAGS: Readonly<Record<number, readonly string[]>> = {
  11: ['--interrupt-budget=1081344'],
  12: [],
  13: [],
};

/**
 * The flags a host sets under V8 `v8Version` (`process.versions.v8`, e.g. `11.3.244.8-node.33`):
 * {@link HOST_V8_FLAGS}'s entry for its major version; none for a version not there or not read.
 * A flag whose name is already in `execArgv` (the host's `process.execArgv`; `--name=value` or
 * `--name value`, `_` and `-` alike, as V8 reads them) is left out: a user who starts the worker
 * with `node --interrupt-budget=N` passes it on to the hosts that way, and the host keeps theirs.
 * @default execArgv none
 */
export function hostV8Flags(v8Version: string, execArgv: readonly string[] = []): readonly string[] {
  const major = /^(\d+)\./.exec(v8Version)?.[1];
  const flags = (major !== undefined && HOST_V8_FLAGS[Number(major)]) || [];
  const given = new Set(execArgv.filter((arg) => arg.startsWith('--')).map(flagName));
  return given.size === 0 ? flags : flags.filter((flag) => !given.has(flagName(flag)));
}

/** A `--name[=value]` flag's name, with `_` as `-` (V8 takes both). */
function flagName(flag: string): string {
  return flag.split('=')[0]!.replaceAll('_', '-');
}
