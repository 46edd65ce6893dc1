import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { createOrchestratorClient, MpdClientError } from '@mpd/client';
import {
  makeTestCertificates,
  MALFORMED_CONTENT_LENGTH_ANSWER,
  malformedContentLength,
  rawHttpExchange,
  type TestCertificates,
} from '@mpd/test-kit';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OrchestratorConfigError, OrchestratorStartError } from './errors.js';
import type { NodeRegistryEvent } from './registry/node-registry.js';
import { type RunningOrchestrator, startOrchestrator } from './server.js';

const running: RunningOrchestrator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((orchestrator) => orchestrator.close()));
});

async function start(options: Parameters<typeof startOrchestrator>[0]): Promise<RunningOrchestrator> {
  const orchestrator = await startOrchestrator(options);
  running.push(orchestrator);
  return orchestrator;
}

describe('startOrchestrator', () => {
  it("answers a request node's parser refuses (Content-Length: abc) with the contract's JSON error naming the header", async () => {
    const orchestrator = await start({ port: 0, host: '127.0.0.1' });
    const answer = await rawHttpExchange(orchestrator.port, malformedContentLength('/api/workers/register'));
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toEqual(MALFORMED_CONTENT_LENGTH_ANSWER);
  });

  it('listens on a free port, prints a reachable URL and serves the API', async () => {
    const orchestrator = await start({ port: 0, host: '127.0.0.1', heartbeatIntervalSeconds: 5 });
    expect(orchestrator.url).toBe(`http://127.0.0.1:${orchestrator.port}`);
    expect(orchestrator.port).toBeGreaterThan(0);
    const client = createOrchestratorClient({ baseUrl: orchestrator.url, validateResponse: true, timeoutMs: 2_000 });
    try {
      const registered = await client.workers.register({
        body: {
          workerNode: {
            id: 'w1',
            endpoint: 'http://w1:9000',
            capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
          },
        },
      });
      expect(registered.body).toMatchObject({ heartbeatIntervalSeconds: 5 });
      expect(orchestrator.registry.get('w1')?.status).toBe('Available');
    } finally {
      await client.close();
    }
  });

  it('sweeps the registry on a timer, so listeners learn of lost workers without polling', async () => {
    const orchestrator = await start({ port: 0, host: '127.0.0.1', heartbeatTimeoutMs: 100, sweepIntervalMs: 20 });
    const events: NodeRegistryEvent[] = [];
    orchestrator.registry.onChange((event) => events.push(event));
    orchestrator.registry.register({
      id: 'w1',
      endpoint: 'http://w1:9000',
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
    });
    const offline = new Promise<NodeRegistryEvent>((resolve) => {
      orchestrator.registry.onChange((event) => event.type === 'offline' && resolve(event));
    });
    await expect(offline).resolves.toEqual({ type: 'offline', workerId: 'w1' });
    expect(events.map((event) => event.type)).toEqual(['registered', 'offline']);
  });

  it('stops serving and sweeping on close, and close can be called twice', async () => {
    const orchestrator = await startOrchestrator({
      port: 0,
      host: '127.0.0.1',
      heartbeatTimeoutMs: 50,
      sweepIntervalMs: 10,
    });
    expect((await fetch(`${orchestrator.url}/api/health`)).status).toBe(200);
    await orchestrator.close();
    await orchestrator.close();
    await expect(fetch(`${orchestrator.url}/api/health`)).rejects.toThrow();
    const swept: string[] = [];
    orchestrator.registry.onChange((event) => swept.push(event.type));
    orchestrator.registry.register({
      id: 'w1',
      endpoint: 'http://w1:9000',
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
    });
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(swept).toEqual(['registered']);
  });

  it('fails with ListenFailed when the port is taken', async () => {
    const first = await start({ port: 0, host: '127.0.0.1' });
    const error = await startOrchestrator({ port: first.port, host: '127.0.0.1' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OrchestratorStartError);
    expect(error).toMatchObject({ code: 'ListenFailed', message: expect.stringContaining(`127.0.0.1:${first.port}`) });
  });

  it('refuses invalid options, naming them', async () => {
    await expect(startOrchestrator({ port: 70_000 })).rejects.toThrow(/port/);
    await expect(startOrchestrator({ port: 0, heartbeatIntervalSeconds: 0 })).rejects.toBeInstanceOf(
      OrchestratorConfigError,
    );
    await expect(startOrchestrator({ port: 0, heartbeatTimeoutMs: -1 })).rejects.toThrow(/heartbeatTimeoutMs/);
    for (const [options, message] of [
      [{ artifactStore: 's3://Not_A_Bucket/x' }, /artifactStore: the bucket "Not_A_Bucket" is not a valid name/],
      [{ artifactStore: 'https://bucket/x' }, /artifactStore: must be s3:\/\/bucket/],
      [{ artifactStore: 's3://bucket/a/../b' }, /artifactStore: the prefix "a\/..\/b" must not hold/],
      [{ artifactStoreEndpoint: 'minio:9000' }, /artifactStoreEndpoint: must be an http/],
      [{ artifactRetentionMs: -1 }, /artifactRetentionMs: must be a finite number of 0 or more/],
      [{ artifactUrlExpiryMs: 0 }, /artifactUrlExpiryMs/],
    ] as const) {
      await expect(startOrchestrator({ port: 0, ...options })).rejects.toThrow(message);
    }
  });
});

/** A pino logger whose lines land in `lines`. */
function capturingLogger(lines: { level: number; msg: string }[]) {
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
      done();
    },
  });
  return pino({ level: 'info' }, stream);
}

describe('startOrchestrator connection timeouts', () => {
  const ADMIN = 'admin-token-for-the-idle-timeout-test-0123456789';
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mpd-idle-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** An orchestrator with a 1 s idle timeout and a store of its own under `dir`. */
  const startIdle = (store: string) =>
    start({ port: 0, host: '127.0.0.1', adminToken: ADMIN, artifactsDir: join(dir, store), idleTimeoutMs: 1_000 });

  /** A raw connection sending `PUT /api/artifacts/blobs/{sha}` headers for `body` (admin token), no body yet. */
  async function startUpload(orchestrator: RunningOrchestrator, body: Buffer): Promise<Socket> {
    const sha256 = createHash('sha256').update(body).digest('hex');
    const socket = connect(orchestrator.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.write(
      `PUT /api/artifacts/blobs/${sha256} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN}\r\n` +
        `Content-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    return socket;
  }

  it('closes a connection on which an upload stalls, after the idle timeout (no 300 s whole-request cap in its place)', async () => {
    const orchestrator = await startIdle('stall');
    const socket = await startUpload(orchestrator, Buffer.alloc(1_000, 1));
    socket.write(Buffer.alloc(10, 1));
    const started = Date.now();
    // Without the idle timeout the stalled request stays open for minutes (the test's own timeout).
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  }, 20_000);

  it('takes an upload that lasts longer than the idle timeout while its bytes keep moving', async () => {
    const orchestrator = await startIdle('slow');
    const body = Buffer.alloc(10 * 1024, 7);
    const socket = await startUpload(orchestrator, body);
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const started = Date.now();
    // Ten pieces 300 ms apart: three idle timeouts long in all, never idle for one.
    for (let piece = 0; piece < 10; piece++) {
      socket.write(body.subarray(piece * 1024, (piece + 1) * 1024));
      await sleep(300);
    }
    for (let waited = 0; !answer.includes('\r\n\r\n{') && waited < 10_000; waited += 50) await sleep(50);
    expect(Date.now() - started).toBeGreaterThan(2_500);
    expect(answer).toMatch(/^HTTP\/1\.1 201 /);
    expect(answer).toContain('"stored":true');
    socket.end();
    await closed;
  }, 20_000);
});

describe('startOrchestrator: the artifact store', () => {
  it('refuses to start on an --artifacts-dir it cannot make or write (a file in its place), naming it', async () => {
    const holder = mkdtempSync(join(tmpdir(), 'mpd-store-file-'));
    try {
      const file = join(holder, 'not-a-directory');
      writeFileSync(file, 'x');
      await expect(start({ port: 0, host: '127.0.0.1', artifactsDir: join(file, 'store') })).rejects.toMatchObject({
        name: 'OrchestratorStartError',
        code: 'ArtifactStoreUnavailable',
        message: expect.stringContaining(
          `Cannot use the artifact store directory ${join(file, 'store')} (--artifacts-dir): ENOTDIR`,
        ),
      });
    } finally {
      rmSync(holder, { recursive: true, force: true });
    }
  });
});

describe('startOrchestrator with tls', () => {
  let certs: TestCertificates;
  beforeAll(async () => {
    certs = await makeTestCertificates();
  });
  afterAll(() => certs?.remove());

  it('serves HTTPS: its URL is https://, a client trusting the CA gets answers, one trusting another CA is refused', async () => {
    const orchestrator = await start({
      port: 0,
      host: '127.0.0.1',
      tls: { cert: certs.serverCert, key: certs.serverKey },
    });
    expect(orchestrator.url).toBe(`https://127.0.0.1:${orchestrator.port}`);
    const trusting = createOrchestratorClient({
      baseUrl: orchestrator.url,
      tls: { ca: certs.caCert },
      timeoutMs: 2_000,
    });
    const wrong = createOrchestratorClient({
      baseUrl: orchestrator.url,
      tls: { ca: certs.otherCaCert },
      timeoutMs: 2_000,
    });
    try {
      expect((await trusting.health.get()).status).toBe(200);
      const error = await wrong.health.get().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MpdClientError);
      expect(error).toMatchObject({ code: 'Unreachable' });
    } finally {
      await Promise.all([trusting.close(), wrong.close()]);
    }
  });

  it('refuses a key that does not match the certificate, as an invalid setting', async () => {
    const error = await startOrchestrator({
      port: 0,
      host: '127.0.0.1',
      tls: { cert: certs.serverCert, key: certs.clientKey },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OrchestratorConfigError);
    expect((error as Error).message).toMatch(/^Invalid setting tls: cannot use the certificate, key or client CA: /);
  });

  it('warns on a non-loopback address without TLS or tokens, never printing a token', async () => {
    const lines: { level: number; msg: string }[] = [];
    await start({ port: 0, host: '0.0.0.0', logger: capturingLogger(lines) });
    const warnings = lines.filter((line) => line.level === 40).map((line) => line.msg);
    expect(warnings).toEqual([
      expect.stringMatching(/^serving plain HTTP on a non-loopback address/),
      expect.stringMatching(
        /^no join token on a non-loopback address: anyone who can reach the orchestrator can register workers/,
      ),
      expect.stringMatching(
        /^no admin token on a non-loopback address: anyone who can reach the orchestrator can list, unregister and drain workers/,
      ),
    ]);

    const quiet: { level: number; msg: string }[] = [];
    const join = 'join-token-0123456789abcdef';
    const admin = 'admin-token-0123456789abcdef';
    await start({
      port: 0,
      host: '0.0.0.0',
      joinToken: join,
      adminToken: admin,
      tls: { cert: certs.serverCert, key: certs.serverKey },
      logger: capturingLogger(quiet),
    });
    expect(quiet.filter((line) => line.level >= 40)).toEqual([]);
    expect(JSON.stringify(quiet)).not.toContain(join);
    expect(JSON.stringify(quiet)).not.toContain(admin);

    const loopback: { level: number; msg: string }[] = [];
    await start({ port: 0, host: '127.0.0.1', logger: capturingLogger(loopback) });
    expect(loopback.filter((line) => line.level >= 40)).toEqual([]);
    // Its start line says where artifacts go (the bucket's in s3-store.spec.ts).
    expect(loopback.find((line) => line.msg === 'orchestrator listening')).toMatchObject({
      artifacts: { kind: 'local', dir: '.mpd/artifact-store' },
    });
  });
});
