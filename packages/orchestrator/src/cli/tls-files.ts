import type { ClientOptions } from '@mpd/client';
import { readTlsFiles as readFiles, type TlsFileSetting } from '@mpd/server-kit/cli';
import { OrchestratorConfigError } from '../errors.js';
import type { StartOrchestratorOptions } from '../server.js';
import { type OrchestratorCliSettings, SETTINGS } from './settings.js';

/** The PEM contents of the TLS files the settings name. */
export interface TlsFiles {
  /** What the server serves HTTPS with (`--tls-cert`, `--tls-key`, `--tls-client-ca`). */
  server: StartOrchestratorOptions['tls'];
  /** What calls to workers use (`--tls-ca`, `--tls-client-cert`, `--tls-client-key`). */
  workers: ClientOptions['tls'];
}

/**
 * Reads the TLS files of the settings, relative paths against `baseDir` (see `readTlsFiles` of
 * `@mpd/server-kit`). Which settings need which others was checked by `parseSettings`.
 * @throws OrchestratorConfigError naming the flag and the variable of a file that cannot be read
 *   or holds no PEM block (the file's contents are never shown).
 */
export function readTlsFiles(
  settings: Pick<OrchestratorCliSettings, TlsFileSetting>,
  baseDir: string = process.cwd(),
): TlsFiles {
  const { server, client } = readFiles(settings, {
    baseDir,
    error: (setting, message, cause) =>
      new OrchestratorConfigError(
        'InvalidSetting',
        SETTINGS.nameOf(setting),
        message,
        cause === undefined ? undefined : { cause },
      ),
  });
  return { server, workers: client };
}
