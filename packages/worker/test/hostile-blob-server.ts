/**
 * Stores of one blob for tests of extraction while downloading. The hostile one serves its archive
 * slowly: two good entries, then one whose path has a `..`, then it holds the archive's last KiB
 * back, so only a download that checks entries as they arrive (and abandons the `GET`) ends. The
 * other serves a good archive whole. A `POST` (the client asking how to move the blob) is told to
 * use the blob routes.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { create } from 'tar';

export interface HostileBlobServer {
  /** The store's base URL (`http://127.0.0.1:<port>`): any `GET` gets the archive; a `POST`, `{"store":"orchestrator"}`. */
  url: string;
  sha256: string;
  size: number;
  /** Resolves once the client closed its connection (it abandoned the download). */
  connectionClosed: Promise<void>;
  close(): Promise<void>;
}

/** Packs the hostile archive from files made under `root` and serves it on 127.0.0.1, port 0. */
export async function startHostileBlobServer(root: string): Promise<HostileBlobServer> {
  const src = join(root, 'hostile-src');
  await mkdir(join(src, 'inner'), { recursive: true });
  for (const name of ['good-1.bin', 'good-2.bin'])
    await writeFile(join(src, 'inner', name), Buffer.alloc(256 * 1024, 7));
  await writeFile(join(src, 'evil.txt'), 'evil');
  const chunks: Buffer[] = [];
  const pack = create({ cwd: join(src, 'inner'), preservePaths: true }, ['good-1.bin', 'good-2.bin', '../evil.txt']);
  for await (const chunk of pack as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
  const archive = Buffer.concat(chunks);
  // The client holds the latest chunk back until the next arrives: the bytes after the offending
  // header come in small writes 50 ms apart, so that a chunk always follows the one holding the
  // header, however the client's reads group the writes (a slow reader on a loaded machine read
  // the header and a single second write as one chunk, held back for good: the download hung).
  // The last 1,024 bytes never come.
  const header = archive.indexOf('../evil.txt') + 512;
  const end = archive.length - 1024;
  let closed!: () => void;
  const connectionClosed = new Promise<void>((resolve) => (closed = resolve));
  const served = await serveBlob(archive, (request, response) => {
    let trickle: NodeJS.Timeout | undefined;
    request.socket.on('close', () => {
      clearInterval(trickle);
      closed();
    });
    response.writeHead(200, { 'content-length': archive.length, 'content-type': 'application/octet-stream' });
    response.write(archive.subarray(0, header));
    let at = header;
    trickle = setInterval(() => {
      if (at >= end) return void clearInterval(trickle);
      response.write(archive.subarray(at, Math.min(at + 8, end)));
      at += 8;
    }, 50);
  });
  return {
    ...served,
    connectionClosed,
  };
}

/** A store serving one good archive whole (`GET`; a `POST` is told to use the blob routes), counting its `GET`s. */
export interface BlobServer {
  url: string;
  sha256: string;
  size: number;
  /** The files packed (`inner/a.bin`, `inner/b.txt`), by path, as bytes. */
  files: Record<string, Buffer>;
  gets(): number;
  close(): Promise<void>;
}

/**
 * Packs two files made under `root` (one of 2 MiB) as a plain tar and serves it on 127.0.0.1, port 0.
 * @param options.held when given, each `GET` sends the archive's first MiB (many reads for the
 *   client, so its bytes flow) and the rest only once `held` resolved
 */
export async function startBlobServer(root: string, options: { held?: Promise<void> } = {}): Promise<BlobServer> {
  const src = join(root, 'good-src');
  await mkdir(join(src, 'inner'), { recursive: true });
  const files = { 'inner/a.bin': Buffer.alloc(2 * 1024 * 1024, 3), 'inner/b.txt': Buffer.from('b') };
  for (const [path, bytes] of Object.entries(files)) await writeFile(join(src, path), bytes);
  const chunks: Buffer[] = [];
  for await (const chunk of create(
    { cwd: src, portable: true },
    Object.keys(files),
  ) as unknown as AsyncIterable<Buffer>)
    chunks.push(chunk);
  const archive = Buffer.concat(chunks);
  let gets = 0;
  const served = await serveBlob(archive, (_request, response) => {
    gets++;
    response.writeHead(200, { 'content-length': archive.length, 'content-type': 'application/octet-stream' });
    if (options.held === undefined) return void response.end(archive);
    response.write(archive.subarray(0, 1024 * 1024));
    void options.held.then(() => response.end(archive.subarray(1024 * 1024)));
  });
  return { ...served, files, gets: () => gets };
}

/**
 * Serves `archive` on 127.0.0.1, port 0: a `POST` (`…/transfers`, the client asking how to move
 * it) is told the orchestrator keeps blobs itself, so the client then `GET`s the blob route,
 * which `get` answers.
 */
async function serveBlob(
  archive: Buffer,
  get: (request: IncomingMessage, response: ServerResponse) => void,
): Promise<{ url: string; sha256: string; size: number; close(): Promise<void> }> {
  const server = createServer((request, response) => {
    if (request.method === 'POST') {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ store: 'orchestrator' }));
      return;
    }
    get(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sha256: createHash('sha256').update(archive).digest('hex'),
    size: archive.length,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Rejects after `ms` saying what did not happen (a bound for a promise in a test). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)),
  ]);
}
