import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** PEM contents of throwaway test certificates, and where {@link makeTestCertificates} wrote them. */
export interface TestCertificates {
  /** The directory holding the files. */
  dir: string;
  /** The test CA's certificate: clients trust it to verify `serverCert`; servers trust it to verify `clientCert`. */
  caCert: string;
  /** A server certificate signed by the CA, for `localhost` and `127.0.0.1`. */
  serverCert: string;
  serverKey: string;
  /** A client certificate signed by the CA (for mutual TLS). */
  clientCert: string;
  clientKey: string;
  /** The certificate of a second, unrelated CA: trusting it instead of `caCert` must fail. */
  otherCaCert: string;
  /** The file of each PEM above. */
  files: {
    caCert: string;
    serverCert: string;
    serverKey: string;
    clientCert: string;
    clientKey: string;
    otherCaCert: string;
  };
  /** Deletes `dir` and everything in it. */
  remove(): Promise<void>;
}

const DAYS = '2';
/** P-256 keys: quick to generate, accepted everywhere. */
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/**
 * Generates throwaway certificates with the `openssl` binary, for TLS tests: a CA, a server
 * certificate for `localhost` / `127.0.0.1` (subjectAltName `IP:127.0.0.1,DNS:localhost`) and a
 * client certificate both signed by it, and a second, unrelated CA. Nothing is meant to be kept:
 * the keys are fresh on every call and valid for two days.
 *
 * ```ts
 * const certs = await makeTestCertificates();
 * afterAll(() => certs.remove());
 * const server = https.createServer({ cert: certs.serverCert, key: certs.serverKey }, app);
 * const client = createOrchestratorClient({ baseUrl, tls: { ca: certs.caCert } });
 * ```
 *
 * @param dir where to write the files (created if missing); default a fresh directory
 *   made with `mkdtemp` under the system's temp directory.
 */
export async function makeTestCertificates(dir?: string): Promise<TestCertificates> {
  const target = dir ?? (await mkdtemp(join(tmpdir(), 'mpd-test-certs-')));
  await mkdir(target, { recursive: true });
  const at = (name: string): string => join(target, name);
  const openssl = (...args: string[]) => run('openssl', args, { cwd: target });

  const makeCa = (name: string, commonName: string) =>
    openssl(
      'req',
      '-x509',
      ...NEW_KEY,
      '-keyout',
      at(`${name}.key`),
      '-out',
      at(`${name}.crt`),
      '-days',
      DAYS,
      '-subj',
      `/CN=${commonName}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );

  /** A key, and a certificate for it signed by the CA with `extensions`. */
  const makeLeaf = async (name: string, commonName: string, extensions: string[]) => {
    await openssl(
      'req',
      '-new',
      ...NEW_KEY,
      '-keyout',
      at(`${name}.key`),
      '-out',
      at(`${name}.csr`),
      '-subj',
      `/CN=${commonName}`,
    );
    await writeFile(at(`${name}.ext`), `${extensions.join('\n')}\n`);
    await openssl(
      'x509',
      '-req',
      '-in',
      at(`${name}.csr`),
      '-CA',
      at('ca.crt'),
      '-CAkey',
      at('ca.key'),
      '-set_serial',
      `0x${Date.now().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`,
      '-days',
      DAYS,
      '-extfile',
      at(`${name}.ext`),
      '-out',
      at(`${name}.crt`),
    );
    await Promise.all([rm(at(`${name}.csr`)), rm(at(`${name}.ext`))]);
  };

  try {
    await Promise.all([makeCa('ca', 'mpd test CA'), makeCa('other-ca', 'mpd unrelated test CA')]);
    await Promise.all([
      makeLeaf('server', 'localhost', [
        'basicConstraints=CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ]),
      makeLeaf('client', 'mpd-test-client', [
        'basicConstraints=CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=clientAuth',
      ]),
    ]);
  } catch (error) {
    const reason = (error as { stderr?: string; message?: string }).stderr || (error as Error).message;
    throw new Error(`makeTestCertificates: openssl failed: ${reason}`, { cause: error });
  }

  const files = {
    caCert: at('ca.crt'),
    serverCert: at('server.crt'),
    serverKey: at('server.key'),
    clientCert: at('client.crt'),
    clientKey: at('client.key'),
    otherCaCert: at('other-ca.crt'),
  };
  const read = (file: string) => readFile(file, 'utf8');
  return {
    dir: target,
    caCert: await read(files.caCert),
    serverCert: await read(files.serverCert),
    serverKey: await read(files.serverKey),
    clientCert: await read(files.clientCert),
    clientKey: await read(files.clientKey),
    otherCaCert: await read(files.otherCaCert),
    files,
    remove: () => rm(target, { recursive: true, force: true }),
  };
}
