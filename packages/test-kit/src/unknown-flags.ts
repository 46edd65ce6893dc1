import type { RunningProcess } from './processes.js';

/** How a CLI run ended: its exit code (null when killed by a signal) and all it wrote. */
export interface CliRunEnd {
  exitCode: number | null;
  stderr: string;
  stdout: string;
}

/**
 * The two command lines of unknown flags both CLIs' specs try (see {@link unknownFlagRuns}):
 * for a spec that runs them in its own process, one after the other.
 */
export const UNKNOWN_FLAGS = {
  bogus: ['--bogus', '1'],
  nearMiss: ['--join-tokn=s3cret-join-token-value'],
} as const satisfies Record<string, readonly string[]>;

/**
 * Runs a CLI with the two unknown flags both CLIs' specs try, each in a process of its own
 * (`cli(args)`, started at once): `--bogus 1` (an unknown flag followed by an argument, as a
 * mistyped `--prot 1` is: the flag is named, not the argument taken as an extra one), and
 * `--join-tokn=…` (a near miss of `--join-token` whose value, a secret, must never be printed).
 * Resolves once both exited.
 */
export async function unknownFlagRuns(
  cli: (args: string[]) => RunningProcess,
): Promise<{ bogus: CliRunEnd; nearMiss: CliRunEnd }> {
  const end = async (run: RunningProcess): Promise<CliRunEnd> => ({
    exitCode: await run.exited,
    stderr: run.stderr(),
    stdout: run.stdout(),
  });
  const [bogus, nearMiss] = await Promise.all([
    end(cli([...UNKNOWN_FLAGS.bogus])),
    end(cli([...UNKNOWN_FLAGS.nearMiss])),
  ]);
  return { bogus, nearMiss };
}

/**
 * What `command` (`mpd-orchestrator`, `mpd-worker`) answers to {@link unknownFlagRuns}: exit 2,
 * nothing on stdout, and on stderr the option named exactly without its value, a suggestion for
 * the near miss, and a pointer to `--help` (server-kit's usage errors, the same in both CLIs).
 */
export function unknownFlagAnswers(command: string): { bogus: CliRunEnd; nearMiss: CliRunEnd } {
  const help = `(${command} --help lists the flags)\n`;
  return {
    bogus: { exitCode: 2, stderr: `error: unknown option '--bogus'\n${help}`, stdout: '' },
    nearMiss: {
      exitCode: 2,
      stderr: `error: unknown option '--join-tokn'\n(Did you mean --join-token?)\n${help}`,
      stdout: '',
    },
  };
}
