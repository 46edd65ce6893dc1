/** The artifact store's routes on `createApp()`: streamed PUT with its hash check, HEAD, verified GET, auth before the body. */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { request as httpRequest, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArtifactClient, ArtifactStoreError } from '@mpd/client';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../app.js';
import type { OrchestratorOptions } from '../orchestrator-options.js';
import { InMemoryNodeRegistry } from '../registry/in-memory-node-registry.js';

const ADMIN = 'admin-token-0123456789';
const JOIN = 'join-token-0123456789';
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const blobPath = (digest: string) => `/api/artifacts/blobs/${digest}`;

interface Harness {
  url: string;
  dir: string;
  credential: string;
  send(
    method: string,
    path: string,
    options?: { token?: string; body?: Buffer; headers?: Record<string, string> },
  ): Promise<Response>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

async function start(options: OrchestratorOptions = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'mpd-store-'));
  const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 120_000 });
  const node = registry.register({
    id: 'w1',
    endpoint: 'http://w1:9000',
    capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
  });
  const credential = registry.credentialOf(node.id)!;
  const app = createApp({
    registry,
    options: { adminToken: ADMIN, joinToken: JOIN, artifactsDir: dir, validateResponses: true, ...options },
  });
  const server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });
  return {
    url,
    dir,
    credential,
    send: (method, path, { token = credential, body, headers = {} } = {}) =>
      fetch(`${url}${path}`, {
        method,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body ? { 'content-type': 'application/octet-stream' } : {}),
          ...headers,
        },
        body,
      }),
  };
}

/**
 * Sends a PUT's headers declaring `declared` bytes and only the first 64 KiB of them, and
 * resolves with the answer's status and how long it took: a server that reads the body first
 * never answers.
 */
function putHeadersOnly(
  url: string,
  path: string,
  declared: number,
  token?: string,
): Promise<{ status: number; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}${path}`, {
      method: 'PUT',
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(declared),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
    });
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, ms: Date.now() - started });
      req.destroy();
    });
    req.on('error', reject);
    req.write(Buffer.alloc(64 * 1024));
  });
}

describe('artifact store routes', () => {
  it('stores a blob under its SHA-256 (201), answers HEAD with its size, serves it byte-identical, and takes it again without keeping it (200)', async () => {
    const store = await start();
    const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, index) => index % 251));
    const digest = sha256(bytes);

    expect((await store.send('HEAD', blobPath(digest))).status).toBe(404);
    const put = await store.send('PUT', blobPath(digest), { body: bytes });
    expect(put.status).toBe(201);
    expect(await put.json()).toEqual({ sha256: digest, size: bytes.length, stored: true });

    const head = await store.send('HEAD', blobPath(digest));
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(bytes.length));

    const got = await store.send('GET', blobPath(digest));
    expect(got.status).toBe(200);
    expect(sha256(Buffer.from(await got.arrayBuffer()))).toBe(digest);

    const again = await store.send('PUT', blobPath(digest), { body: bytes, token: ADMIN });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ stored: false });
    expect(await readdir(store.dir)).toEqual([digest]);
  });

  it("refuses a body that does not hash to its name (400 ArtifactHashMismatch) and keeps nothing; an earlier process's partial upload is removed", async () => {
    const store = await start();
    await writeFile(join(store.dir, '.incoming-0123456789abcdef'), 'half an upload of a process that died');
    const bytes = Buffer.from('the bytes of the blob');
    const wrong = sha256(Buffer.from('other bytes'));
    const put = await store.send('PUT', blobPath(wrong), { body: bytes });
    expect(put.status).toBe(400);
    expect(await put.json()).toMatchObject({ code: 'ArtifactHashMismatch' });
    expect(await readdir(store.dir)).toEqual([]);
    expect((await store.send('HEAD', blobPath(wrong))).status).toBe(404);
  });

  it('cuts the download of a blob whose file was tampered with, so the client never reads it complete, and removes the file (its producer uploads it again)', async () => {
    const store = await start();
    const bytes = Buffer.alloc(256 * 1024, 7);
    const digest = sha256(bytes);
    expect((await store.send('PUT', blobPath(digest), { body: bytes })).status).toBe(201);
    const tampered = Buffer.from(bytes);
    tampered[1000] = 8;
    await writeFile(join(store.dir, digest), tampered);
    const got = await store.send('GET', blobPath(digest));
    expect(got.status).toBe(200);
    await expect(got.arrayBuffer()).rejects.toThrow();
    // Gone: a HEAD says so, and the blob can be stored again.
    await expect.poll(async () => (await store.send('HEAD', blobPath(digest))).status).toBe(404);
    expect((await store.send('PUT', blobPath(digest), { body: bytes })).status).toBe(201);
    // By its SHA-256, not toEqual: vitest's deep equality walks the 262,144 bytes one by one,
    // 2-4.5 s of CPU at a load of 15 (this test's timeout on 2 cores), where the download took 40 ms.
    const again = Buffer.from(await (await store.send('GET', blobPath(digest))).arrayBuffer());
    expect([again.length, sha256(again)]).toEqual([bytes.length, digest]);
  });

  it('answers an upload the store cannot keep (its directory a file, or in /proc) with 500 at once, not after a client timeout', async () => {
    const holder = await mkdtemp(join(tmpdir(), 'mpd-store-file-'));
    cleanups.push(() => rm(holder, { recursive: true, force: true }));
    const file = join(holder, 'not-a-directory');
    await writeFile(file, 'x');
    const bytes = Buffer.alloc(1024 * 1024, 3);
    // /proc answers ENOENT under a parent that exists: Node's recursive mkdir never settled there.
    for (const artifactsDir of [file, '/proc/mpd-no-such-store']) {
      const store = await start({ artifactsDir });
      const started = Date.now();
      expect((await store.send('PUT', blobPath(sha256(bytes)), { body: bytes })).status).toBe(500);
      expect(Date.now() - started).toBeLessThan(10_000);
    }
  }, 30_000);

  it('refuses an upload without a credential (401) or with the join token (403) before its 1 GiB body is read', async () => {
    const store = await start();
    const digest = sha256(Buffer.from('x'));
    const anonymous = await putHeadersOnly(store.url, blobPath(digest), 1024 ** 3);
    expect(anonymous.status).toBe(401);
    expect(anonymous.ms).toBeLessThan(1_000);
    expect((await putHeadersOnly(store.url, blobPath(digest), 1024 ** 3, 'not-a-token-of-ours')).status).toBe(401);
    expect((await putHeadersOnly(store.url, blobPath(digest), 1024 ** 3, JOIN)).status).toBe(403);
    expect((await store.send('GET', blobPath(digest), { token: '' })).status).toBe(401);
    expect(await readdir(store.dir)).toEqual([]);
  });

  it('refuses a blob over --max-artifact-size by its Content-Length (413) before reading it, and one without Content-Length (411)', async () => {
    const store = await start({ maxArtifactBytes: 1024 * 1024 });
    const digest = sha256(Buffer.from('x'));
    const tooLarge = await putHeadersOnly(store.url, blobPath(digest), 1024 * 1024 + 1, store.credential);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.ms).toBeLessThan(1_000);

    const answer = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${store.url}${blobPath(digest)}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${store.credential}`, 'transfer-encoding': 'chunked' },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end('x');
    });
    expect(answer).toBe(411);
  });

  it('refuses a name that is not 64 lowercase hex digits (400 naming params.sha256), and answers 404 ArtifactNotFound for a blob it lacks', async () => {
    const store = await start();
    for (const name of ['ABC', '..%2Fetc', `${'a'.repeat(63)}G`, 'A'.repeat(64)]) {
      const answer = await store.send('GET', blobPath(name));
      expect(answer.status).toBe(400);
      expect(await answer.json()).toMatchObject({ code: 'ValidationFailed', issues: [{ field: 'params.sha256' }] });
    }
    const missing = await store.send('GET', blobPath('0'.repeat(64)));
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'ArtifactNotFound' });
  });
});

/** Sends a chunked POST's headers and `sent` bytes of body, then waits: resolves with the answer's status and the request. */
function postChunked(
  url: string,
  sent: number,
  token?: string,
): Promise<{ status: number; ms: number; req: ReturnType<typeof httpRequest> }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/api/artifacts/blobs`, {
      method: 'POST',
      headers: {
        'content-type': 'application/octet-stream',
        'transfer-encoding': 'chunked',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
    });
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, ms: Date.now() - started, req });
    });
    req.on('error', reject);
    for (let written = 0; written < sent; written += 64 * 1024) req.write(Buffer.alloc(64 * 1024, 5));
  });
}

describe('POST /api/artifacts/blobs: an upload whose hash is not known yet (issue 13, round J)', () => {
  it('stores a chunked body as the blob it hashes to (201 naming it), serves it byte-identical, and takes it again without keeping a second copy (200)', async () => {
    const store = await start();
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 5);
    for (let index = 0; index < bytes.length; index++) bytes[index] = (index * 7) % 253;
    const digest = sha256(bytes);
    // ArtifactClient.putStream: chunked, as a producer streams its archive.
    const client = new ArtifactClient({ baseUrl: store.url, token: () => store.credential });
    cleanups.push(() => client.close());
    const chunks = Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000, 2_000_000), bytes.subarray(2_000_000)]);
    expect(await client.putStream(chunks)).toEqual({ sha256: digest, size: bytes.length, stored: true });
    expect(sha256(Buffer.from(await (await store.send('GET', blobPath(digest))).arrayBuffer()))).toBe(digest);

    // Again, by the admin, with Content-Length this time: the verified file stays, nothing else is kept.
    const again = await store.send('POST', '/api/artifacts/blobs', { body: bytes, token: ADMIN });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ sha256: digest, size: bytes.length, stored: false });
    expect(await readdir(store.dir)).toEqual([digest]);

    const other = Buffer.alloc(100_000, 9);
    expect(await client.putStream(Readable.from([other]))).toEqual({
      sha256: sha256(other),
      size: other.length,
      stored: true,
    });
    expect((await readdir(store.dir)).sort()).toEqual([digest, sha256(other)].sort());
  });

  it('refuses a caller without a credential (401) or with the join token (403), and a body that is not application/octet-stream (415), before reading a byte', async () => {
    const store = await start();
    const anonymous = await postChunked(store.url, 1024 * 1024);
    expect(anonymous.status).toBe(401);
    anonymous.req.destroy();
    const join = await postChunked(store.url, 1024 * 1024, JOIN);
    expect(join.status).toBe(403);
    join.req.destroy();
    const typed = await store.send('POST', '/api/artifacts/blobs', {
      body: Buffer.from('{}'),
      headers: { 'content-type': 'application/json' },
    });
    expect(typed.status).toBe(415);
    expect(await typed.json()).toMatchObject({
      code: 'UnsupportedMediaType',
      errorMessage: expect.stringContaining('headers.content-type'),
    });
    expect(await readdir(store.dir)).toEqual([]);
  });

  it('refuses a Content-Length past --max-artifact-size (413) before reading, and a chunked body once it passes the limit (413, connection closed), keeping no file', async () => {
    const store = await start({ maxArtifactBytes: 1024 * 1024 });
    const declared = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${store.url}/api/artifacts/blobs`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${store.credential}`,
          'content-type': 'application/octet-stream',
          'content-length': String(1024 * 1024 + 1),
        },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on('error', reject);
      req.write(Buffer.alloc(1024));
    });
    expect(declared).toBe(413);

    // Exactly the limit passes.
    const atLimit = await store.send('POST', '/api/artifacts/blobs', { body: Buffer.alloc(1024 * 1024, 1) });
    expect(atLimit.status).toBe(201);
    const kept = await readdir(store.dir);
    expect(kept).toEqual([sha256(Buffer.alloc(1024 * 1024, 1))]);

    // 2 MiB sent of an endless body: refused once past 1 MiB, the rest never read.
    const over = await postChunked(store.url, 2 * 1024 * 1024, store.credential);
    expect(over.status).toBe(413);
    await new Promise<void>((resolve) =>
      over.req.socket?.destroyed ? resolve() : over.req.once('close', () => resolve()),
    );
    expect(await readdir(store.dir)).toEqual(kept);
  });

  it('a chunked body past the limit gets its 413 and then a clean close, never a reset: the rest of the body is read into nothing before the connection closes (20 uploads of 16x a small limit)', async () => {
    const limit = 256 * 1024;
    const store = await start({ maxArtifactBytes: limit });
    const { port } = new URL(store.url);
    // A raw client that writes the whole body before it reads anything (as undici does when its
    // body is ready faster than the answer): a server that closes with body bytes unread resets the
    // connection, and such a client saw ECONNRESET in place of the 413 (2 in 60, round J's review).
    const upload = () =>
      new Promise<{ answer: string; error?: string }>((resolve) => {
        const socket = connect(Number(port), '127.0.0.1');
        const received: Buffer[] = [];
        let error: string | undefined;
        socket.on('data', (chunk: Buffer) => received.push(chunk));
        socket.on('error', (failure: NodeJS.ErrnoException) => (error = failure.code ?? failure.message));
        socket.on('close', () =>
          resolve({ answer: Buffer.concat(received).toString('latin1'), ...(error ? { error } : {}) }),
        );
        socket.write(
          `POST /api/artifacts/blobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${store.credential}\r\n` +
            'Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n',
        );
        const chunk = Buffer.alloc(64 * 1024, 7);
        for (let sent = 0; sent < 16 * limit; sent += chunk.length) {
          socket.write(`${chunk.length.toString(16)}\r\n`);
          socket.write(chunk);
          socket.write('\r\n');
        }
        socket.write('0\r\n\r\n');
      });
    for (let round = 0; round < 20; round++) {
      const { answer, error } = await upload();
      expect({ status: answer.slice(0, 12), error }).toEqual({ status: 'HTTP/1.1 413', error: undefined });
      expect(answer).toMatch(/connection: close/i);
      expect(answer).toContain('PayloadTooLarge');
    }
    expect(await readdir(store.dir)).toEqual([]);
  });

  it('keeps no temporary file and no blob of a client that hangs up mid-body', async () => {
    const store = await start();
    const req = httpRequest(`${store.url}/api/artifacts/blobs`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${store.credential}`,
        'content-type': 'application/octet-stream',
        'transfer-encoding': 'chunked',
      },
    });
    req.on('error', () => undefined);
    req.write(Buffer.alloc(512 * 1024, 2));
    // The temporary file exists while the body arrives…
    await expect
      .poll(async () => (await readdir(store.dir)).filter((name) => name.startsWith('.incoming-')).length)
      .toBe(1);
    req.destroy();
    // …and is gone once the client went away; nothing was named.
    await expect.poll(async () => await readdir(store.dir)).toEqual([]);
  });
});

describe('POST /api/artifacts/blobs/{sha256}/transfers with the directory store', () => {
  const transfer = (store: Harness, digest: string, body: unknown, token?: string) =>
    store.send('POST', `${blobPath(digest)}/transfers`, {
      ...(token === undefined ? {} : { token }),
      body: Buffer.from(JSON.stringify(body)),
      headers: { 'content-type': 'application/json' },
    });

  it('answers { store: "orchestrator" } (use the blob routes); 404 for a download of a blob it lacks', async () => {
    const store = await start();
    const digest = sha256(Buffer.from('x'));
    const upload = await transfer(store, digest, { direction: 'upload', size: 1 });
    expect(upload.status).toBe(200);
    expect(await upload.json()).toEqual({ store: 'orchestrator' });
    const missing = await transfer(store, digest, { direction: 'download' });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'ArtifactNotFound' });
    expect((await store.send('PUT', blobPath(digest), { body: Buffer.from('x') })).status).toBe(201);
    expect(await (await transfer(store, digest, { direction: 'download' })).json()).toEqual({ store: 'orchestrator' });
  });

  it('refuses an upload over --max-artifact-size (413 naming body.size), a bad body (400 naming the field), a caller without a credential (401) or with the join token (403)', async () => {
    const store = await start({ maxArtifactBytes: 1024 });
    const digest = sha256(Buffer.from('x'));
    const large = await transfer(store, digest, { direction: 'upload', size: 1025 });
    expect(large.status).toBe(413);
    expect(await large.json()).toMatchObject({ code: 'PayloadTooLarge', issues: [{ field: 'body.size' }] });
    for (const [body, field] of [
      [{ direction: 'upload' }, 'body.size'],
      [{ direction: 'sideways' }, 'body.direction'],
      [{ direction: 'download', size: -1 }, 'body.size'],
      [{ direction: 'download', extra: 1 }, 'body'],
    ] as const) {
      const answer = await transfer(store, digest, body);
      expect(answer.status).toBe(400);
      expect((await answer.json()) as { issues: { field: string }[] }).toMatchObject({
        code: 'ValidationFailed',
        issues: expect.arrayContaining([expect.objectContaining({ field })]),
      });
    }
    expect((await transfer(store, digest, { direction: 'download' }, '')).status).toBe(401);
    expect((await transfer(store, digest, { direction: 'download' }, JOIN)).status).toBe(403);
  });
});

describe('ArtifactClient against the store', () => {
  it('uploads a file once (HEAD first), downloads it verified to a file, and leaves nothing of a damaged or missing blob', async () => {
    const store = await start();
    const client = new ArtifactClient({ baseUrl: store.url, token: () => store.credential });
    cleanups.push(() => client.close());
    const work = await mkdtemp(join(tmpdir(), 'mpd-client-'));
    cleanups.push(() => rm(work, { recursive: true, force: true }));
    const bytes = Buffer.alloc(1024 * 1024 + 17, 3);
    await writeFile(join(work, 'in.bin'), bytes);

    const digest = await client.putFile(join(work, 'in.bin'));
    expect(digest).toEqual({ sha256: sha256(bytes), size: bytes.length });
    expect(await client.has(digest.sha256)).toBe(bytes.length);
    await client.putFile(join(work, 'in.bin')); // the store has it: HEAD, no PUT
    expect(await client.getToFile(digest.sha256, join(work, 'out.bin'))).toEqual(digest);
    expect(sha256(await readFile(join(work, 'out.bin')))).toBe(digest.sha256);

    const tampered = Buffer.from(bytes);
    tampered[bytes.length - 1] = 4;
    await writeFile(join(store.dir, digest.sha256), tampered);
    await expect(client.getToFile(digest.sha256, join(work, 'bad.bin'))).rejects.toThrow();
    await expect(client.getToFile('0'.repeat(64), join(work, 'none.bin'))).rejects.toMatchObject({
      status: 404,
      code: 'ArtifactNotFound',
    });
    expect((await readdir(work)).sort()).toEqual(['in.bin', 'out.bin']);

    await expect(client.put(sha256(Buffer.from('y')), 1, Readable.from([Buffer.from('x')]))).rejects.toBeInstanceOf(
      ArtifactStoreError,
    );
  });

  it("uploads a file under the digest its caller computed while writing it (not hashed again); the store refuses a digest that is not the file's", async () => {
    const store = await start();
    const client = new ArtifactClient({ baseUrl: store.url, token: () => store.credential });
    cleanups.push(() => client.close());
    const work = await mkdtemp(join(tmpdir(), 'mpd-client-'));
    cleanups.push(() => rm(work, { recursive: true, force: true }));
    const bytes = Buffer.alloc(2 * 1024 * 1024 + 5, 7);
    await writeFile(join(work, 'in.bin'), bytes);
    const digest = { sha256: sha256(bytes), size: bytes.length };

    expect(await client.putFile(join(work, 'in.bin'), digest)).toEqual(digest);
    expect(sha256(await readFile(join(store.dir, digest.sha256)))).toBe(digest.sha256);
    // The digest given is the one sent: were the file hashed again, this upload would succeed.
    const wrong = { sha256: sha256(Buffer.from('other bytes')), size: bytes.length };
    await expect(client.putFile(join(work, 'in.bin'), wrong)).rejects.toMatchObject({
      status: 400,
      code: 'ArtifactHashMismatch',
    });
    expect(existsSync(join(store.dir, wrong.sha256))).toBe(false);
  });
});
