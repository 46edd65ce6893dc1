/** Reading the TLS files both CLIs take (`--tls-cert`, `--tls-ca`, ...), the same way; and their settings rows. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { z } from 'zod';
import type { SettingRow } from './define-settings.js';

/** The flag and environment variable of each TLS file setting: both CLIs take the same six. */
const TLS_FLAGS = {
  tlsCert: { flag: '--tls-cert <file>', env: 'MPD_TLS_CERT' },
  tlsKey: { flag: '--tls-key <file>', env: 'MPD_TLS_KEY' },
  tlsClientCa: { flag: '--tls-client-ca <file>', env: 'MPD_TLS_CLIENT_CA' },
  tlsCa: { flag: '--tls-ca <file>', env: 'MPD_TLS_CA' },
  tlsClientCert: { flag: '--tls-client-cert <file>', env: 'MPD_TLS_CLIENT_CERT' },
  tlsClientKey: { flag: '--tls-client-key <file>', env: 'MPD_TLS_CLIENT_KEY' },
} as const;

export type TlsFileSetting = keyof typeof TLS_FLAGS;

/** The TLS file settings of both CLIs, each with its flag and environment variable as messages name it. */
export const TLS_FILE_SETTINGS = Object.fromEntries(
  Object.entries(TLS_FLAGS).map(([key, { flag, env }]) => [key, `${flag.split(' ')[0]} (${env})`]),
) as Readonly<Record<TlsFileSetting, string>>;

/**
 * The six TLS file rows of a CLI's settings table ({@link defineSettings}), in the order `--help`
 * lists them. What differs between the CLIs is who the other side is: the help of the client
 * CA, of the CA the other side's certificate must chain to, and of the client certificate.
 */
export function tlsFileSettings<Schema extends z.ZodTypeAny>(
  schema: Schema,
  help: { tlsClientCa: string; tlsCa: string; tlsClientCert: string },
): Record<TlsFileSetting, SettingRow<Schema>> {
  const row = (key: TlsFileSetting, text: string): SettingRow<Schema> => ({ ...TLS_FLAGS[key], help: text, schema });
  return {
    tlsCert: row('tlsCert', 'serve HTTPS with this PEM certificate (chain); needs --tls-key'),
    tlsKey: row('tlsKey', 'the PEM private key of --tls-cert'),
    tlsClientCa: row('tlsClientCa', help.tlsClientCa),
    tlsCa: row('tlsCa', help.tlsCa),
    tlsClientCert: row('tlsClientCert', help.tlsClientCert),
    tlsClientKey: row('tlsClientKey', 'the PEM private key of --tls-client-cert'),
  };
}

/** Which TLS settings need which others: a certificate needs its key (and back), mutual TLS needs TLS. */
export const TLS_SETTING_NEEDS: readonly (readonly [TlsFileSetting, readonly TlsFileSetting[]])[] = [
  ['tlsCert', ['tlsKey']],
  ['tlsKey', ['tlsCert']],
  ['tlsClientCa', ['tlsCert', 'tlsKey']],
  ['tlsClientCert', ['tlsClientKey']],
  ['tlsClientKey', ['tlsClientCert']],
];

/** The PEM contents of the TLS files the settings name. */
export interface TlsFiles {
  /** What the server serves HTTPS with (`--tls-cert`, `--tls-key`, `--tls-client-ca`). */
  server: { cert: string; key: string; clientCa?: string } | undefined;
  /** What the process's calls to the other side use (`--tls-ca`, `--tls-client-cert`, `--tls-client-key`). */
  client: { ca?: string; cert?: string; key?: string } | undefined;
}

/** Options of {@link readTlsFiles}. */
export interface ReadTlsFilesOptions {
  /**
   * What relative paths are resolved against.
   * @default process.cwd()
   */
  baseDir?: string;
  /**
   * Makes the error thrown for a file that cannot be read (`cause`: the file system's error) or
   * holds no PEM block; `message` names the flag and the variable.
   * @default a plain `Error`
   */
  error?: (setting: TlsFileSetting, message: string, cause?: unknown) => Error;
}

/**
 * Reads the TLS files of the settings. Only the files are read here: which settings need which
 * others ({@link TLS_SETTING_NEEDS}) is the settings parser's to check.
 * @throws what `options.error` makes, naming the flag and the variable of a file that cannot be
 *   read or holds no PEM block (the file's contents are never shown).
 */
export function readTlsFiles(
  config: Partial<Record<TlsFileSetting, string | undefined>>,
  options: ReadTlsFilesOptions = {},
): TlsFiles {
  const makeError =
    options.error ??
    ((_setting: TlsFileSetting, message: string, cause?: unknown) =>
      new Error(message, cause === undefined ? undefined : { cause }));
  const read = (key: TlsFileSetting): string | undefined => {
    const file = config[key];
    if (file === undefined) return undefined;
    const path = resolve(options.baseDir ?? process.cwd(), file);
    const name = TLS_FILE_SETTINGS[key];
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
      throw makeError(key, `Invalid setting ${name}: cannot read ${path}: ${reason}`, error);
    }
    if (!/-----BEGIN [A-Z0-9 ]+-----/.test(text)) {
      throw makeError(key, `Invalid setting ${name}: ${path} is not a PEM file (no -----BEGIN ...----- line)`);
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
    client:
      ca !== undefined || clientCert !== undefined
        ? {
            ...(ca !== undefined ? { ca } : {}),
            ...(clientCert !== undefined && clientKey !== undefined ? { cert: clientCert, key: clientKey } : {}),
          }
        : undefined,
  };
}
