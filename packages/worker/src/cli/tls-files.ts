import { readTlsFiles as readFiles, type TlsFileSetting } from '@mpd/server-kit/cli';
import { WorkerConfigError } from '../errors.js';
import type { WorkerOptions } from '../worker-options.js';
import { SETTINGS, type WorkerCliSettings } from './settings.js';

/** The PEM contents of the TLS files the settings name. */
export interface TlsFiles {
  /** What the worker serves HTTPS with (`--tls-cert`, `--tls-key`, `--tls-client-ca`). */
  server: WorkerOptions['tls'];
  /** What calls to the orchestrator use (`--tls-ca`, `--tls-client-cert`, `--tls-client-key`). */
  orchestrator: WorkerOptions['orchestratorTls'];
}

/**
 * Reads the TLS files of the settings, relative paths against `baseDir` (see `readTlsFiles` of
 * `@mpd/server-kit`). Which settings need which others was checked by `parseSettings`.
 * @throws WorkerConfigError naming the flag and the variable of a file that cannot be read or
 *   holds no PEM block (the file's contents are never shown).
 */
export function readTlsFiles(
  settings: Pick<WorkerCliSettings, TlsFileSetting>,
  baseDir: string = process.cwd(),
): TlsFiles {
  const { server, client } = readFiles(settings, {
    baseDir,
    error: (setting, message, cause) =>
      new WorkerConfigError(
        'InvalidSetting',
        SETTINGS.nameOf(setting),
        message,
        cause === undefined ? undefined : { cause },
      ),
  });
  return { server, orchestrator: client };
}
