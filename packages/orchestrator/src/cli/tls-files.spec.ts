import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestCertificates, type TestCertificates } from '@mpd/test-kit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OrchestratorConfigError } from '../errors.js';
import { parseSettings } from './settings.js';
import { readTlsFiles } from './tls-files.js';

// How the files are read and checked: packages/server-kit/src/cli/tls-files.spec.ts. Here: what
// the orchestrator makes of them.
let certs: TestCertificates;
beforeAll(async () => {
  certs = await makeTestCertificates();
});
afterAll(() => certs?.remove());

function errorOf(action: () => unknown): OrchestratorConfigError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(OrchestratorConfigError);
    return error as OrchestratorConfigError;
  }
  throw new Error('expected an OrchestratorConfigError');
}

describe('readTlsFiles', () => {
  it('reads nothing without TLS settings', () => {
    expect(readTlsFiles(parseSettings({}))).toEqual({ server: undefined, workers: undefined });
  });

  it('reads the server certificate, key and client CA, and the CA and client certificate for workers', () => {
    const config = parseSettings({
      tlsCert: 'server.crt',
      tlsKey: 'server.key',
      tlsClientCa: certs.files.caCert,
      tlsCa: 'ca.crt',
      tlsClientCert: 'client.crt',
      tlsClientKey: 'client.key',
    });
    expect(readTlsFiles(config, certs.dir)).toEqual({
      server: { cert: certs.serverCert, key: certs.serverKey, clientCa: certs.caCert },
      workers: { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey },
    });
    expect(readTlsFiles(parseSettings({ tlsCa: 'ca.crt' }), certs.dir)).toEqual({
      server: undefined,
      workers: { ca: certs.caCert },
    });
  });

  it('refuses a missing file, or one without a PEM block, with an OrchestratorConfigError naming the setting', () => {
    const missing = errorOf(() =>
      readTlsFiles(parseSettings({ tlsCert: 'server.crt', tlsKey: 'missing.key' }), certs.dir),
    );
    expect(missing.message).toBe(
      `Invalid setting --tls-key (MPD_TLS_KEY): cannot read ${join(certs.dir, 'missing.key')}: no such file`,
    );
    expect(missing).toMatchObject({ code: 'InvalidSetting', setting: '--tls-key (MPD_TLS_KEY)' });
    expect(missing.cause).toMatchObject({ code: 'ENOENT' });
    const file = join(certs.dir, 'not-pem.txt');
    writeFileSync(file, 'secret-looking-text');
    const notPem = errorOf(() => readTlsFiles(parseSettings({ tlsCa: file })));
    expect(notPem.message).toBe(
      `Invalid setting --tls-ca (MPD_TLS_CA): ${file} is not a PEM file (no -----BEGIN ...----- line)`,
    );
    expect(notPem.setting).toBe('--tls-ca (MPD_TLS_CA)');
  });
});
