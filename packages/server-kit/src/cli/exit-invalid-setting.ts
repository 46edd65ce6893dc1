/**
 * The exit code of a server's command given a setting it cannot use: 2, that of a command line
 * commander refuses, so a supervisor tells "fix the configuration" from a failure (1).
 */
export const EXIT_INVALID_SETTING = 2;

/**
 * Ends a server's command on a setting it cannot use, found before anything starts (a pipeline
 * file that does not load, a directory that cannot be made): one line on stderr,
 * `COMMAND: Invalid setting FLAG (ENV): REASON`, as the settings' own checks word theirs, then
 * exit code {@link EXIT_INVALID_SETTING}.
 * @param command the command's name, e.g. `mpd-worker`
 * @param setting the setting as its user gives it, e.g. `--pipeline (MPD_PIPELINE)` (the settings table's `nameOf`)
 * @param reason what is wrong with it, e.g. `Pipeline file not found: /tmp/ci.pipeline.ts`
 */
export function exitInvalidSetting(command: string, setting: string, reason: string): never {
  exitWithSettingError(command, `Invalid setting ${setting}: ${reason}`);
}

/**
 * Ends a server's command on a setting error whose message is worded already (the settings'
 * own checks: `Invalid setting FLAG (ENV): REASON`): `COMMAND: MESSAGE` on stderr, then exit code
 * {@link EXIT_INVALID_SETTING}.
 */
export function exitWithSettingError(command: string, message: string): never {
  process.stderr.write(`${command}: ${message}\n`);
  process.exit(EXIT_INVALID_SETTING);
}
