import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, connect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTestCertificates, type TestCertificates } from '../src/index.js';

let certs: TestCertificates;
afterAll(() => certs?.remove());

/** Whether a TLS handshake with `server` options succeeds from a client with `client` options. */
async function handshake(
  server: { cert: string; key: string; ca?: string; requestCert?: boolean },
  client: { ca: string; cert?: string; key?: string; servername?: string },
): Promise<string> {
  const listener = createServer({ ...server, rejectUnauthorized: true }, (socket) => socket.end('hello'));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const { port } = listener.address() as AddressInfo;
  try {
    return await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, ...client }, () => undefined);
      let data = '';
      socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
  } finally {
    listener.close();
  }
}

describe('makeTestCertificates', () => {
  it('writes a CA, a server and a client certificate signed by it, and an unrelated CA, to a fresh directory', async () => {
    certs = await makeTestCertificates();
    for (const [name, file] of Object.entries(certs.files)) {
      expect(existsSync(file), name).toBe(true);
      expect(readFileSync(file, 'utf8')).toBe(certs[name as keyof typeof certs.files]);
      expect(file.startsWith(certs.dir)).toBe(true);
    }
    expect(certs.serverKey).toMatch(/-----BEGIN PRIVATE KEY-----/);
    const ca = new X509Certificate(certs.caCert);
    const other = new X509Certificate(certs.otherCaCert);
    const server = new X509Certificate(certs.serverCert);
    const client = new X509Certificate(certs.clientCert);
    expect(ca.ca).toBe(true);
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(client.verify(ca.publicKey)).toBe(true);
    expect(server.verify(other.publicKey)).toBe(false);
    expect(server.checkHost('localhost')).toBe('localhost');
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(server.subjectAltName).toBe('IP Address:127.0.0.1, DNS:localhost');
  });

  it('the certificates work for TLS, mutual TLS included; the other CA does not verify the server', async () => {
    const server = { cert: certs.serverCert, key: certs.serverKey };
    expect(await handshake(server, { ca: certs.caCert })).toBe('hello');
    expect(await handshake(server, { ca: certs.caCert, servername: 'localhost' })).toBe('hello');
    await expect(handshake(server, { ca: certs.otherCaCert })).rejects.toMatchObject({
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
    const mutual = { ...server, ca: certs.caCert, requestCert: true };
    expect(await handshake(mutual, { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey })).toBe('hello');
    await expect(handshake(mutual, { ca: certs.caCert })).rejects.toThrow();
  });

  it('writes to the directory it is given', async () => {
    const again = await makeTestCertificates(`${certs.dir}/nested`);
    expect(again.dir).toBe(`${certs.dir}/nested`);
    expect(again.caCert).not.toBe(certs.caCert);
  });
});
