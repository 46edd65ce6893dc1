import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { readTlsFiles, TLS_FILE_SETTINGS, type TlsFileSetting, tlsFileSettings } from './tls-files.js';

// The reader checks for a PEM block, not what it holds: PEM-shaped text is enough here (the
// packages' specs and tests/integration/in-process/tls.spec.ts use real certificates).
const pem = (label: string, body: string) => `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
const dir = mkdtempSync(join(tmpdir(), 'mpd-tls-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  writeFileSync(join(dir, name), text);
  return name;
};
const CA = pem('CERTIFICATE', 'Y2E=');
const CERT = pem('CERTIFICATE', 'c2VydmVy');
const KEY = pem('PRIVATE KEY', 'a2V5');
const CLIENT_CERT = pem('CERTIFICATE', 'Y2xpZW50');
const CLIENT_KEY = pem('EC PRIVATE KEY', 'Y2xpZW50LWtleQ==');
file('ca.crt', CA);
file('server.crt', CERT);
file('server.key', KEY);
file('client.crt', CLIENT_CERT);
file('client.key', CLIENT_KEY);

/** The error `readTlsFiles` throws, made by an `error` option that records its arguments. */
function failure(config: Partial<Record<TlsFileSetting, string>>) {
  const made: { setting: TlsFileSetting; cause: unknown }[] = [];
  try {
    readTlsFiles(config, {
      baseDir: dir,
      error: (setting, message, cause) => {
        made.push({ setting, cause });
        return new RangeError(message);
      },
    });
  } catch (error) {
    expect(error).toBeInstanceOf(RangeError);
    return { message: (error as Error).message, ...made[0]! };
  }
  throw new Error('expected readTlsFiles to throw');
}

describe('readTlsFiles', () => {
  it('reads nothing without TLS settings', () => {
    expect(readTlsFiles({})).toEqual({ server: undefined, client: undefined });
  });

  it('reads the server certificate, key and client CA, and the CA and client certificate for calls', () => {
    const config = {
      tlsCert: 'server.crt',
      tlsKey: join(dir, 'server.key'), // absolute paths are taken as they are
      tlsClientCa: 'ca.crt',
      tlsCa: 'ca.crt',
      tlsClientCert: 'client.crt',
      tlsClientKey: 'client.key',
    };
    expect(readTlsFiles(config, { baseDir: dir })).toEqual({
      server: { cert: CERT, key: KEY, clientCa: CA },
      client: { ca: CA, cert: CLIENT_CERT, key: CLIENT_KEY },
    });
    expect(readTlsFiles({ tlsCert: 'server.crt', tlsKey: 'server.key' }, { baseDir: dir })).toEqual({
      server: { cert: CERT, key: KEY },
      client: undefined,
    });
    expect(readTlsFiles({ tlsCa: 'ca.crt' }, { baseDir: dir })).toEqual({ server: undefined, client: { ca: CA } });
    expect(readTlsFiles({ tlsClientCert: 'client.crt', tlsClientKey: 'client.key' }, { baseDir: dir })).toEqual({
      server: undefined,
      client: { cert: CLIENT_CERT, key: CLIENT_KEY },
    });
  });

  it('refuses a missing file naming the flag and the variable, with the file system error as the cause', () => {
    const { message, setting, cause } = failure({ tlsCert: 'server.crt', tlsKey: 'missing.key' });
    expect(message).toBe(
      `Invalid setting --tls-key (MPD_TLS_KEY): cannot read ${join(dir, 'missing.key')}: no such file`,
    );
    expect(setting).toBe('tlsKey');
    expect(cause).toMatchObject({ code: 'ENOENT' });
    expect(failure({ tlsCa: 'nope.crt' }).message).toBe(
      `Invalid setting --tls-ca (MPD_TLS_CA): cannot read ${join(dir, 'nope.crt')}: no such file`,
    );
  });

  it('refuses a file that holds no PEM block, without showing its contents', () => {
    const notPem = file('not-pem.txt', 'secret-looking-text');
    const { message, setting, cause } = failure({ tlsClientCa: notPem });
    expect(message).toBe(
      `Invalid setting --tls-client-ca (MPD_TLS_CLIENT_CA): ${join(dir, notPem)} is not a PEM file (no -----BEGIN ...----- line)`,
    );
    expect(message).not.toContain('secret-looking-text');
    expect(setting).toBe('tlsClientCa');
    expect(cause).toBeUndefined();
  });

  it('throws a plain Error without an error option', () => {
    expect(() => readTlsFiles({ tlsCa: 'nope.crt' }, { baseDir: dir })).toThrow(
      /^Invalid setting --tls-ca \(MPD_TLS_CA\): cannot read/,
    );
  });

  it('names every setting by its flag and variable', () => {
    for (const [key, name] of Object.entries(TLS_FILE_SETTINGS)) {
      const flag = `--${key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
      const variable = `MPD_${key.replace(/[A-Z]/g, (letter) => `_${letter}`).toUpperCase()}`;
      expect(name).toBe(`${flag} (${variable})`);
    }
  });

  it('gives a CLI table the six rows under the names its messages use, with the help it chooses for the other side', () => {
    const schema = z.string();
    const rows = tlsFileSettings(schema, {
      tlsClientCa: 'client CA',
      tlsCa: 'their CA',
      tlsClientCert: 'our certificate',
    });
    expect(Object.keys(rows)).toEqual(Object.keys(TLS_FILE_SETTINGS));
    for (const [key, row] of Object.entries(rows)) {
      expect(`${row.flag.split(' ')[0]} (${row.env})`).toBe(TLS_FILE_SETTINGS[key as TlsFileSetting]);
      expect(row.schema).toBe(schema);
    }
    expect([rows.tlsClientCa.help, rows.tlsCa.help, rows.tlsClientCert.help]).toEqual([
      'client CA',
      'their CA',
      'our certificate',
    ]);
  });
});
