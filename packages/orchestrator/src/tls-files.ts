import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ClientOptions } from '@mpd/client';
import { type OrchestratorCliConfig, settingName } from './config.js';
import { OrchestratorConfigError } from './errors.js';
import type { StartOrchestratorOptions } from './server.js';

type TlsFileSetting = 'tlsCert' | 'tlsKey' | 'tlsClientCa' | 'tlsCa' | 'tlsClientCert' | 'tlsClientKey';

/** The PEM contents of the TLS files the settings name. */
export interface TlsFiles {
  /** What the server serves HTTPS with (`--tls-cert`, `--tls-key`, `--tls-client-ca`). */
  server: StartOrchestratorOptions['tls'];
  /** What calls to workers use (`--tls-ca`, `--tls-client-cert`, `--tls-client-key`). */
  workers: ClientOptions['tls'];
}

/**
 * Reads the TLS files of the settings, relative paths against `baseDir`. Only the files are read
 * here: which settings need which others was checked by `parseSettings`.
 * @throws OrchestratorConfigError naming the flag and the variable of a file that cannot be read
 *   or holds no PEM block (the file's contents are never shown).
 */
export function readTlsFiles(
  config: Pick<OrchestratorCliConfig, TlsFileSetting>,
  baseDir: string = process.cwd(),
): TlsFiles {
  const read = (key: TlsFileSetting): string | undefined => {
    const file = config[key];
    if (file === undefined) return undefined;
    const path = resolve(baseDir, file);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
      throw new OrchestratorConfigError(
        'InvalidSetting',
        settingName(key),
        `Invalid setting ${settingName(key)}: cannot read ${path}: ${reason}`,
        { cause: error },
      );
    }
    if (!/-----BEGIN [A-Z0-9 ]+-----/.test(text)) {
      throw new OrchestratorConfigError(
        'InvalidSetting',
        settingName(key),
        `Invalid setting ${settingName(key)}: ${path} is not a PEM file (no -----BEGIN ...----- line)`,
      );
    }
    return text;
  };
  const cert = read('tlsCert');
  const key = read('tlsKey');
  const clientCa = read('tlsClientCa');
  const ca = read('tlsCa');
  const clientCert = read('tlsClientCert');
  const clientKey = read('tlsClientKey');
  return {
    server:
      cert !== undefined && key !== undefined
        ? { cert, key, ...(clientCa !== undefined ? { clientCa } : {}) }
        : undefined,
    workers:
      ca !== undefined || clientCert !== undefined
        ? {
            ...(ca !== undefined ? { ca } : {}),
            ...(clientCert !== undefined && clientKey !== undefined ? { cert: clientCert, key: clientKey } : {}),
          }
        : undefined,
  };
}
