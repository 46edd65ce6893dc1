/** How a CLI run ended: its exit code (null when killed by a signal) and all it wrote. */
export interface CliRunEnd {
  exitCode: number | null;
  stderr: string;
  stdout: string;
}

/**
 * The two command lines of unknown flags both CLIs' specs try (each answered in the spec's own
 * process since round V: `answeredInProcess`): `--bogus 1` (an unknown flag followed by an
 * argument, as a mistyped `--prot 1` is: the flag is named, not the argument taken as an extra
 * one), and `--join-tokn=…` (a near miss of `--join-token` whose value, a secret, must never be
 * printed).
 */
export const UNKNOWN_FLAGS = {
  bogus: ['--bogus', '1'],
  nearMiss: ['--join-tokn=s3cret-join-token-value'],
} as const satisfies Record<string, readonly string[]>;

/**
 * What `command` (`mpd-orchestrator`, `mpd-worker`) answers to {@link UNKNOWN_FLAGS}: exit 2,
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
