/**
 * The artifact store in an S3-compatible bucket: the orchestrator on `createApp()` against a
 * local S3-compatible server running as a real process (s3rver behind a recording front, from
 * test-kit). Workers' bytes go to the bucket directly with presigned URLs, carrying no mpd
 * credential; the blob routes still work, streaming through the orchestrator; what is read is
 * hash-checked, so a tampered object is refused.
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { S3RequestPresigner } from '@aws-sdk/s3-request-presigner';
import { ArtifactClient, BlobDamagedError } from '@mpd/client';
import { killLeftovers, S3_SERVER_CREDENTIALS, type S3Request, type S3Server, startS3Server } from '@mpd/test-kit';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../app.js';
import { S3BlobStore } from '../artifacts/s3-blob-store.js';
import type { OrchestratorOptions } from '../orchestrator-options.js';
import { InMemoryNodeRegistry } from '../registry/in-memory-node-registry.js';
import { startOrchestrator } from '../server.js';

const BUCKET = 'mpd-artifacts';
const ADMIN = 'admin-token-0123456789';
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

const bytesOf = (data: ArrayBuffer | ArrayBufferView): Uint8Array =>
  ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);

/** SHA-256 (an HMAC with a key) as the SDK's signer takes it. */
class Sha256 {
  private hash: Hash | Hmac;
  private readonly secret: string | Uint8Array | undefined;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.secret = typeof secret === 'string' || secret === undefined ? secret : bytesOf(secret);
    this.hash = this.reset();
  }
  reset(): Hash | Hmac {
    return (this.hash = this.secret === undefined ? createHash('sha256') : createHmac('sha256', this.secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(typeof data === 'string' ? data : bytesOf(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
}

/**
 * Whether a presigned request, as the bucket received it (its path, query and the headers it
 * names as signed), carries the SigV4 signature of `secretAccessKey`: the check s3rver does not
 * make, done with the SDK's own signer on what arrived. A client that changed a signed header
 * (the size, the checksum) or a wrong secret fails it, as AWS S3 would refuse them.
 */
async function signedWith(request: S3Request, secretAccessKey: string): Promise<boolean> {
  const { 'X-Amz-Signature': signature, ...query } = request.query;
  const signedHeaders = query['X-Amz-SignedHeaders']!.split(';');
  const [accessKeyId, , region] = query['X-Amz-Credential']!.split('/');
  const date = query['X-Amz-Date']!.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z');
  const expiresIn = Number(query['X-Amz-Expires']);
  for (const name of Object.keys(query)) if (name.startsWith('X-Amz-')) delete query[name];
  const headers = Object.fromEntries(signedHeaders.map((name) => [name, String(request.headers[name])]));
  const [hostname, port] = headers.host!.split(':');
  const presigner = new S3RequestPresigner({
    credentials: { accessKeyId: accessKeyId!, secretAccessKey },
    region: region!,
    sha256: Sha256,
  });
  const resigned = await presigner.presign(
    {
      method: request.method,
      protocol: 'http:',
      hostname: hostname!,
      port: Number(port),
      path: request.path,
      query,
      headers,
    },
    {
      signingDate: new Date(date),
      expiresIn,
      signableHeaders: new Set(signedHeaders),
      unhoistableHeaders: new Set(signedHeaders.filter((name) => name.startsWith('x-amz-'))),
    },
  );
  return resigned.query?.['X-Amz-Signature'] === signature;
}

let s3: S3Server;
let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'mpd-s3-'));
  s3 = await startS3Server({ dir: work, buckets: [BUCKET] });
}, 30_000);
afterAll(async () => {
  killLeftovers();
  await rm(work, { recursive: true, force: true });
});
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

/** The bucket's options as the orchestrator takes them, each test under a prefix of its own. */
const bucketOptions = (prefix: string) =>
  ({
    artifactStore: `s3://${BUCKET}/${prefix}`,
    artifactStoreEndpoint: s3.url,
    artifactStorePathStyle: true,
    artifactStoreRegion: 'us-east-1',
    artifactStoreCredentials: S3_SERVER_CREDENTIALS,
  }) satisfies OrchestratorOptions;

async function start(prefix: string, options: OrchestratorOptions = {}, store?: S3BlobStore) {
  // The admin token (a worker's credential is the same to these routes; the process test in
  // tests/integration/processes/artifacts.spec.ts runs real workers with theirs).
  const credential = ADMIN;
  /** The requests that reached the orchestrator's own blob routes: their bodies' declared sizes. */
  const blobRouteBytes: number[] = [];
  const app = createApp({
    registry: new InMemoryNodeRegistry({ heartbeatTimeoutMs: 120_000 }),
    options: { adminToken: ADMIN, validateResponses: true, ...bucketOptions(prefix), ...options },
    ...(store ? { artifactStore: store } : {}),
  });
  const server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  // What each call of a blob route declared it carries (read without consuming the body).
  server.on('request', (req) => {
    if (/^\/api\/artifacts\/blobs\/[0-9a-f]{64}$/.test(req.url ?? '')) {
      blobRouteBytes.push(Number(req.headers['content-length'] ?? 0));
    }
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = new ArtifactClient({
    baseUrl: url,
    token: credential,
    headers: { 'x-mpd-probe': 'orchestrator-only' },
  });
  cleanups.push(async () => {
    await client.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const files = await mkdtemp(join(work, 'files-'));
  return { url, credential, client, files, blobRouteBytes, key: (digest: string) => `/${BUCKET}/${prefix}/${digest}` };
}

describe('S3-compatible artifact store', () => {
  it('a worker uploads and downloads (to a file, and as a stream) directly with presigned URLs, byte-identical, never sending its credential to the bucket', async () => {
    const { client, files, blobRouteBytes, key } = await start('direct');
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 5, 7);
    await writeFile(join(files, 'in.bin'), bytes);
    const before = s3.requests().length;

    const digest = await client.putFile(join(files, 'in.bin'));
    expect(digest).toEqual({ sha256: sha256(bytes), size: bytes.length });
    await client.putFile(join(files, 'in.bin')); // the bucket has it: no second PUT
    await client.getToFile(digest.sha256, join(files, 'out.bin'));
    expect(sha256(await readFile(join(files, 'out.bin')))).toBe(digest.sha256);
    // The stream a worker's cache writes while a module extracts (`get`) comes from the bucket too.
    const streamed = await client.get(digest.sha256);
    expect(streamed.size).toBe(bytes.length);
    const streamedBytes: Buffer[] = [];
    for await (const chunk of streamed.body) streamedBytes.push(chunk as Buffer);
    expect(sha256(Buffer.concat(streamedBytes))).toBe(digest.sha256);

    const seen = s3.requests().slice(before);
    const bodies = seen.filter((request) => request.path === key(digest.sha256) && request.method !== 'HEAD');
    expect(bodies.map((request) => [request.method, request.status])).toEqual([
      ['PUT', 200],
      ['GET', 200],
      ['GET', 200],
    ]);
    const [put, get, streamedGet] = bodies;
    expect(streamedGet!.query).toHaveProperty('X-Amz-Signature');
    expect(put!.bodyBytes).toBe(bytes.length);
    // Presigned: the authority is in the query; the size and SHA-256 are signed headers.
    expect(put!.query).toHaveProperty('X-Amz-Signature');
    expect(put!.headers['x-amz-checksum-sha256']).toBe(Buffer.from(digest.sha256, 'hex').toString('base64'));
    expect(put!.headers['content-length']).toBe(String(bytes.length));
    expect(put!.query['X-Amz-SignedHeaders']!.split(';')).toEqual(['content-length', 'host', 'x-amz-checksum-sha256']);
    expect(get!.query).toHaveProperty('X-Amz-Signature');
    for (const request of [put!, get!, streamedGet!]) {
      expect(request.headers.authorization).toBeUndefined();
      expect(request.headers['x-mpd-probe']).toBeUndefined();
    }
    // Nothing at all the bucket saw carried the worker's bearer token.
    expect(seen.every((request) => !String(request.headers.authorization ?? '').startsWith('Bearer'))).toBe(true);
    expect(blobRouteBytes).toEqual([]);
    // Signed with the orchestrator's secret, over the headers as they arrived: a bucket that
    // checks signatures takes both; the wrong secret gives another signature.
    for (const request of [put!, get!]) {
      expect(await signedWith(request, S3_SERVER_CREDENTIALS.secretAccessKey)).toBe(true);
      expect(await signedWith(request, 'not-the-secret')).toBe(false);
    }
    // A client sending another size than the signed one would not pass.
    expect(await signedWith({ ...put!, headers: { ...put!.headers, 'content-length': '1' } }, 'S3RVER')).toBe(false);
  });

  it('refuses an upload without a hash (409 ArtifactHashRequired) before reading it: ArtifactClient.putStream answers undefined, remembered, and the upload by hash goes to the bucket', async () => {
    const { client, files, key } = await start('unnamed');
    const bytes = Buffer.alloc(4 * 1024 * 1024, 6);
    await writeFile(join(files, 'in.bin'), bytes);
    const before = s3.requests().length;
    // Several MiB that never end: refused all the same, without a hang or a cut connection.
    let pulled = 0;
    const endless = new Readable({
      read() {
        pulled++;
        this.push(Buffer.alloc(64 * 1024, 1));
      },
    });
    expect(await client.putStream(endless)).toBeUndefined();
    expect(endless.destroyed).toBe(true);
    expect(await client.putStream(Readable.from([bytes]))).toBeUndefined(); // not asked again
    const digest = await client.putFile(join(files, 'in.bin'));
    expect(digest).toEqual({ sha256: sha256(bytes), size: bytes.length });
    const seen = s3.requests().slice(before);
    expect(seen.filter((request) => request.method === 'PUT').map((request) => request.path)).toEqual([
      key(digest.sha256),
    ]);
    expect(pulled).toBeGreaterThan(0);
  });

  it('signs Content-Length and x-amz-checksum-sha256 into an upload URL that expires after the configured time', async () => {
    const { url, credential } = await start('signed', { artifactUrlExpiryMs: 120_000 });
    const digest = sha256(Buffer.from('signed'));
    const started = Date.now();
    const answer = await fetch(`${url}/api/artifacts/blobs/${digest}/transfers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
      body: JSON.stringify({ direction: 'upload', size: 6 }),
    });
    expect(answer.status).toBe(200);
    const transfer = (await answer.json()) as { url: string; headers: Record<string, string>; expiresAt: string };
    expect(transfer).toMatchObject({ store: 'url', exists: false, size: 6, method: 'PUT' });
    const query = new URL(transfer.url).searchParams;
    expect(query.get('X-Amz-SignedHeaders')!.split(';')).toEqual(
      expect.arrayContaining(['content-length', 'x-amz-checksum-sha256']),
    );
    expect(query.get('X-Amz-Expires')).toBe('120');
    expect(transfer.headers).toEqual({
      'content-length': '6',
      'x-amz-checksum-sha256': Buffer.from(digest, 'hex').toString('base64'),
    });
    expect(Date.parse(transfer.expiresAt) - started).toBeGreaterThan(110_000);
    expect(Date.parse(transfer.expiresAt) - started).toBeLessThan(130_000);
  });

  it('refuses an upload over --max-artifact-size (413) before asking the bucket anything, and a download of a blob it lacks (404)', async () => {
    const { client } = await start('limits', { maxArtifactBytes: 1024 });
    const before = s3.requests().length;
    await expect(client.transfer('a'.repeat(64), 'upload', 1025)).rejects.toMatchObject({
      status: 413,
      code: 'PayloadTooLarge',
    });
    expect(s3.requests().length).toBe(before);
    await expect(client.transfer('a'.repeat(64), 'download')).rejects.toMatchObject({
      status: 404,
      code: 'ArtifactNotFound',
    });
  });

  it('refuses an object changed in the bucket on download, through the URL and through the blob route, leaving no file', async () => {
    const { url, credential, client, files } = await start('tampered');
    const bytes = Buffer.alloc(256 * 1024, 1);
    await writeFile(join(files, 'in.bin'), bytes);
    const { sha256: digest } = await client.putFile(join(files, 'in.bin'));
    const other = Buffer.from(bytes);
    other[other.length - 1] = 2;
    const admin = new S3Client({
      endpoint: s3.url,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: S3_SERVER_CREDENTIALS,
    });
    await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: `tampered/${digest}`, Body: other }));
    admin.destroy();

    await expect(client.getToFile(digest, join(files, 'out.bin'))).rejects.toBeInstanceOf(BlobDamagedError);
    const streamed = await client.get(digest);
    await expect(
      (async () => {
        for await (const _chunk of streamed.body);
      })(),
    ).rejects.toBeInstanceOf(BlobDamagedError);
    const through = await fetch(`${url}/api/artifacts/blobs/${digest}`, {
      headers: { authorization: `Bearer ${credential}` },
    });
    expect(through.status).toBe(200);
    await expect(through.arrayBuffer()).rejects.toThrow(); // cut before its end
    expect((await readdir(files)).sort()).toEqual(['in.bin']);
  });

  it('the blob routes still work with the bucket: the orchestrator streams PUT, HEAD and GET, and keeps nothing of a body that does not hash to its name', async () => {
    const { url, credential, key } = await start('routes');
    const bytes = Buffer.from('through the orchestrator');
    const digest = sha256(bytes);
    const send = (method: string, name: string, body?: Buffer) =>
      fetch(`${url}/api/artifacts/blobs/${name}`, {
        method,
        headers: {
          authorization: `Bearer ${credential}`,
          ...(body ? { 'content-type': 'application/octet-stream' } : {}),
        },
        body,
      });
    const wrong = sha256(Buffer.from('something else'));
    const refused = await send('PUT', wrong, bytes);
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ code: 'ArtifactHashMismatch' });
    expect((await send('HEAD', wrong)).status).toBe(404);
    expect(s3.requests().filter((request) => request.path === key(wrong) && request.status === 200)).toEqual([]);

    const stored = await send('PUT', digest, bytes);
    expect(stored.status).toBe(201);
    expect(await stored.json()).toEqual({ sha256: digest, size: bytes.length, stored: true });
    expect((await send('PUT', digest, bytes)).status).toBe(200);
    const head = await send('HEAD', digest);
    expect([head.status, head.headers.get('content-length')]).toEqual([200, String(bytes.length)]);
    const got = await send('GET', digest);
    expect(Buffer.from(await got.arrayBuffer())).toEqual(bytes);
  });

  it('a URL signed too long ago is refused by the bucket (403 AccessDenied), and a bucket refusing the orchestrator’s key is 502 ArtifactStoreUnavailable naming its error', async () => {
    const signedAnHourAgo = new S3BlobStore({
      url: `s3://${BUCKET}/expired`,
      endpoint: s3.url,
      region: 'us-east-1',
      pathStyle: true,
      urlExpiryMs: 15 * 60_000,
      credentials: S3_SERVER_CREDENTIALS,
      now: () => Date.now() - 3_600_000,
    });
    const { client, files } = await start('expired', {}, signedAnHourAgo);
    await writeFile(join(files, 'in.bin'), 'late');
    await expect(client.putFile(join(files, 'in.bin'))).rejects.toMatchObject({ status: 403, code: 'AccessDenied' });

    const stranger = await start('stranger', {
      artifactStoreCredentials: { accessKeyId: 'NOT-A-KEY', secretAccessKey: 'S3RVER' },
    });
    await writeFile(join(stranger.files, 'in.bin'), 'stranger');
    await expect(stranger.client.putFile(join(stranger.files, 'in.bin'))).rejects.toMatchObject({
      status: 502,
      code: 'ArtifactStoreUnavailable',
      message: expect.stringContaining('the bucket failed HEAD stranger/'),
    });
  });

  it('startOrchestrator refuses to start on a bucket it cannot use (a wrong key, an endpoint that refuses), naming the store; starts on the right one', async () => {
    const refusedKey = startOrchestrator({
      port: 0,
      host: '127.0.0.1',
      ...bucketOptions('start-check'),
      artifactStoreCredentials: { accessKeyId: 'NOT-A-KEY', secretAccessKey: 'S3RVER' },
    });
    await expect(refusedKey).rejects.toMatchObject({
      name: 'OrchestratorStartError',
      code: 'ArtifactStoreUnavailable',
      message: expect.stringMatching(
        /^Cannot use the artifact store s3:\/\/[^ ]+\/start-check: the bucket failed HEAD start-check\/[0-9a-f]{64}: 403/,
      ),
    });
    // A port nothing listens on: the connection is refused at once.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    await expect(
      startOrchestrator({
        port: 0,
        host: '127.0.0.1',
        ...bucketOptions('start-check'),
        artifactStoreEndpoint: `http://127.0.0.1:${port}`,
      }),
    ).rejects.toMatchObject({ code: 'ArtifactStoreUnavailable' });
    const lines: { msg: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const started = await startOrchestrator({ port: 0, host: '127.0.0.1', ...bucketOptions('start-check'), logger });
    await started.close();
    // Its start line names the bucket and prefix, not the endpoint.
    const listening = lines.find((line) => line.msg === 'orchestrator listening');
    expect(listening).toMatchObject({ artifacts: { kind: 's3', url: `s3://${BUCKET}/start-check` } });
    expect(JSON.stringify(listening)).not.toContain(s3.url);
  });
});
