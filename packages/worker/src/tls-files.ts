import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { WorkerCliConfig } from './config.js';
import { WorkerConfigError } from './errors.js';
import type { WorkerOptions } from './worker-options.js';

const FILE_SETTINGS = {
  tlsCert: '--tls-cert (MPD_TLS_CERT)',
  tlsKey: '--tls-key (MPD_TLS_KEY)',
  tlsClientCa: '--tls-client-ca (MPD_TLS_CLIENT_CA)',
  tlsCa: '--tls-ca (MPD_TLS_CA)',
  tlsClientCert: '--tls-client-cert (MPD_TLS_CLIENT_CERT)',
  tlsClientKey: '--tls-client-key (MPD_TLS_CLIENT_KEY)',
} as const;

/** The PEM contents of the TLS files the settings name. */
export interface TlsFiles {
  /** What the worker serves HTTPS with (`--tls-cert`, `--tls-key`, `--tls-client-ca`). */
  server: WorkerOptions['tls'];
  /** What calls to the orchestrator use (`--tls-ca`, `--tls-client-cert`, `--tls-client-key`). */
  orchestrator: WorkerOptions['orchestratorTls'];
}

/**
 * Reads the TLS files of the settings, relative paths against `baseDir`. Which settings need
 * which others was checked by `parseWorkerConfig`.
 * @throws WorkerConfigError naming the flag and the variable of a file that cannot be read or
 *   holds no PEM block (the file's contents are never shown).
 */
export function readTlsFiles(
  config: Pick<WorkerCliConfig, keyof typeof FILE_SETTINGS>,
  baseDir: string = process.cwd(),
): TlsFiles {
  const read = (key: keyof typeof FILE_SETTINGS): string | undefined => {
    const file = config[key];
    if (file === undefined) return undefined;
    const path = resolve(baseDir, file);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
      throw new WorkerConfigError(`Invalid setting ${FILE_SETTINGS[key]}: cannot read ${path}: ${reason}`, {
        cause: error,
      });
    }
    if (!/-----BEGIN [A-Z0-9 ]+-----/.test(text)) {
      throw new WorkerConfigError(
        `Invalid setting ${FILE_SETTINGS[key]}: ${path} is not a PEM file (no -----BEGIN ...----- line)`,
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
    orchestrator:
      ca !== undefined || clientCert !== undefined
        ? {
            ...(ca !== undefined ? { ca } : {}),
            ...(clientCert !== undefined && clientKey !== undefined ? { cert: clientCert, key: clientKey } : {}),
          }
        : undefined,
  };
}
