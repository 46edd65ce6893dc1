/** The command line of the scripts that compare checkouts (`cli-compare.ts`, `heartbeat-compare.ts`). */
import { benchPath } from './processes.js';

/**
 * The arguments after the script's name; {@link takeOption} and {@link takeCpuProf} take theirs
 * out, so that what is left are the checkouts.
 */
export const compareArgs: string[] = process.argv.slice(2);

/** The value of `--NAME VALUE` (taken out of {@link compareArgs}), or `fallback`. */
export function takeOption(name: string, fallback: string): string {
  const index = compareArgs.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const [value] = compareArgs.splice(index, 2).slice(1);
  return value ?? fallback;
}

/** With `--cpu-prof` (taken out of {@link compareArgs}): every process the bench starts writes a CPU profile into `bench/profiles/`. */
export function takeCpuProf(): void {
  const index = compareArgs.indexOf('--cpu-prof');
  if (index < 0) return;
  compareArgs.splice(index, 1);
  process.env.MPD_BENCH_CPU_PROF_DIR = benchPath('profiles');
}
