/** The command-line options of the bench's own scripts (`cli-compare.ts`, `heartbeat-compare.ts`, `pipeline-load.ts`). */

/**
 * Takes `--NAME VALUE` out of `args` (what is left are the script's operands, e.g. checkouts)
 * and returns VALUE, or `fallback` when the option is not there.
 */
export function takeOption(args: string[], name: string, fallback: string): string {
  const index = args.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const [value] = args.splice(index, 2).slice(1);
  return value ?? fallback;
}

/** Takes the flag `--NAME` out of `args`; true when it was there. */
export function takeFlag(args: string[], name: string): boolean {
  const index = args.indexOf(`--${name}`);
  if (index >= 0) args.splice(index, 1);
  return index >= 0;
}
