/**
 * `@mpd/server-kit/cli`: the part of `@mpd/server-kit` a CLI needs before it knows its arguments
 * are valid: the settings engine (`defineSettings`) and setting schemas, the exits of an invalid
 * setting, `--version`'s package version, TLS files, the JSON logs' format and the writes at exit,
 * and directories. It loads commander, zod and `bytes`, and none of express, ts-rest, helmet,
 * pino or the contract's schemas: `mpd worker --help`, a bad flag or a bad setting answer without
 * them, and the commands load the server (`@mpd/server-kit` and the rest) with `import()` once
 * the settings are valid (round R; `bench/cli-start.ts` measures it). Everything here is also
 * exported by `@mpd/server-kit`.
 */
export { definedOnly, defineSettings, unknownOptionName } from './define-settings.js';
export type {
  DefineSettingsOptions,
  OldNameGiven,
  RawSettings,
  SecretFlagGiven,
  SettingAlias,
  SettingRow,
  SettingRows,
  SettingsCheckContext,
  SettingsDefinition,
  SettingValues,
} from './define-settings.js';
export {
  bodyLimitText,
  commaSeparatedText,
  hostText,
  integerText,
  LOG_LEVELS,
  logLevelText,
  parseSize,
  pathText,
  portText,
  sizeText,
  sizeTextOf,
  switchText,
  tokenText,
} from './setting-schemas.js';
export { type CliRunOptions, developmentRunOptions } from './cli-run-options.js';
export { EXIT_INVALID_SETTING, exitInvalidSetting, exitWithSettingError } from './exit-invalid-setting.js';
export { LOG_FORMATTERS, LOG_LINE_KEYS, logBase, logProcessWarnings } from './log-format.js';
export type { WarningLogger } from './log-format.js';
export { LOG_WRITTEN_TIMEOUT_MS, logWritten, writeAfterLog } from './log-written.js';
export type { FlushableLog } from './log-written.js';
export { makeDirectory } from '../make-directory.js';
export { packageVersion } from './package-version.js';
export { readTlsFiles, TLS_FILE_SETTINGS, TLS_SETTING_NEEDS, tlsFileSettings } from './tls-files.js';
export type { ReadTlsFilesOptions, TlsFiles, TlsFileSetting } from './tls-files.js';
