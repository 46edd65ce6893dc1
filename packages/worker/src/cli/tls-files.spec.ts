import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestCertificates, type TestCertificates } from '@mpd/test-kit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkerConfigError } from '../errors.js';
import { parseSettings } from './settings.js';
import { readTlsFiles } from './tls-files.js';

// How the files are read and checked: packages/server-kit/src/cli/tls-files.spec.ts. Here: what
// the worker makes of them.
let certs: TestCertificates;
beforeAll(async () => {
  certs = await makeTestCertificates();
});
afterAll(() => certs?.remove());

describe('readTlsFiles', () => {
  it('reads nothing without TLS settings', () => {
    expect(readTlsFiles(parseSettings({}))).toEqual({ server: undefined, orchestrator: undefined });
  });

  it("reads the worker's certificate, key and client CA, and the CA and client certificate for the orchestrator", () => {
    const config = parseSettings({
      tlsCert: 'server.crt',
      tlsKey: 'server.key',
      tlsClientCa: 'ca.crt',
      tlsCa: certs.files.caCert,
      tlsClientCert: 'client.crt',
      tlsClientKey: 'client.key',
    });
    expect(readTlsFiles(config, certs.dir)).toEqual({
      server: { cert: certs.serverCert, key: certs.serverKey, clientCa: certs.caCert },
      orchestrator: { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey },
    });
  });

  it('refuses a missing file, or one without a PEM block, with a WorkerConfigError naming the flag and the variable', () => {
    expect(() => readTlsFiles(parseSettings({ tlsCa: 'nope.crt' }), certs.dir)).toThrow(
      new WorkerConfigError(
        'InvalidSetting',
        '--tls-ca (MPD_TLS_CA)',
        `Invalid setting --tls-ca (MPD_TLS_CA): cannot read ${join(certs.dir, 'nope.crt')}: no such file`,
      ),
    );
    const file = join(certs.dir, 'garbage.pem');
    writeFileSync(file, 'not a certificate');
    let error: unknown;
    try {
      readTlsFiles(parseSettings({ tlsCert: file, tlsKey: 'server.key' }), certs.dir);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(WorkerConfigError);
    expect(error).toMatchObject({ code: 'InvalidSetting' });
    expect(error).toMatchObject({ setting: '--tls-cert (MPD_TLS_CERT)' });
    expect((error as Error).message).toBe(
      `Invalid setting --tls-cert (MPD_TLS_CERT): ${file} is not a PEM file (no -----BEGIN ...----- line)`,
    );
  });
});
