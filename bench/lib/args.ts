/** The command-line options of the bench's own scripts (`cli-compare.ts`, `heartbeat-compare.ts`, `pipeline-load.ts`, `route-split.ts`, `execute-call.ts`). */
import { parseArgs } from 'node:util';

/** An option of {@link benchArgs}, as `util.parseArgs` takes it. */
export interface BenchOption {
  type: 'string' | 'boolean';
  default?: string | boolean;
  short?: string;
}

/** The values {@link benchArgs} read: a string option's text, a boolean's presence; undefined when absent without a default. */
export type BenchValues<Options> = {
  [K in keyof Options]: Options[K] extends { type: 'boolean' } ? boolean | undefined : string | undefined;
};

/**
 * A bench script's command line read by node's `util.parseArgs` (strict): `options` by name
 * (`{ size: { type: 'string', default: '2000' } }`), the operands (e.g. checkouts) in
 * `positionals`. `--help` (`-h`) prints `usage` to stdout and exits 0; an unknown option, or
 * one without its value, prints the error and `usage` to stderr and exits 2 (before, an unknown
 * `--flag`, `--help` included, was taken for an operand: a checkout path).
 */
export function benchArgs<Options extends Record<string, BenchOption>>(
  usage: string,
  options: Options,
  argv: string[] = process.argv.slice(2),
): { values: BenchValues<Options>; positionals: string[] } {
  try {
    // Typed loosely here: parseArgs's own types cannot follow a generic table of options.
    const parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } } as Record<string, BenchOption>,
      allowPositionals: true,
      strict: true,
    });
    const values = parsed.values as Record<string, string | boolean | undefined>;
    if (values.help) {
      process.stdout.write(`${usage.trim()}\n`);
      process.exit(0);
    }
    return { values: values as BenchValues<Options>, positionals: parsed.positionals };
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${usage.trim()}\n`);
    process.exit(2);
  }
}
