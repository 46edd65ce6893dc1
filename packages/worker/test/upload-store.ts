/**
 * A store taking uploads, for the worker's upload paths (`worker-blobs.spec.ts`,
 * `hosted-artifacts.spec.ts`): moved out of `worker-blobs.spec.ts` to be shared.
 */
import { createHash } from 'node:crypto';
import { rename, symlink } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import type { ArtifactClient } from '@mpd/client';
import type { WorkerBlobs } from '../src/artifacts/worker-blobs.js';

/**
 * A module's race against the worker's upload, made deterministic: `blobs`' client, asked to
 * upload a file of the host's scratch directory `scratchDir` (the one directory a module is
 * given), first swaps a symbolic link to `target` (a file of the worker's) over it, as a module
 * watching that directory could. Answers the paths the client was asked to upload from.
 */
export function swapOverScratchUploads(blobs: WorkerBlobs, scratchDir: string, target: string): string[] {
  const uploadedFrom: string[] = [];
  const real = (blobs as unknown as { client: ArtifactClient }).client;
  const client = Object.create(real) as ArtifactClient;
  client.putFile = async (path, digest) => {
    uploadedFrom.push(path);
    if (dirname(path) === scratchDir) {
      await symlink(target, `${path}.l`);
      await rename(`${path}.l`, path);
    }
    return await real.putFile.call(client, path, digest);
  };
  (blobs as unknown as { client: ArtifactClient }).client = client;
  return uploadedFrom;
}

/**
 * A store taking uploads: `POST /api/artifacts/blobs` hashed as it arrives and answered with what
 * it hashed to (or, `hashRequired`, 409 `ArtifactHashRequired` as an orchestrator with a bucket
 * answers, and then the routes by hash: transfers, `HEAD` 404, `PUT`). Records every request, the
 * bytes each body brought so far, and whether it ended or was cut. `keepsBlobs`: `HEAD` of a blob
 * it received (by the hash of the bytes that came) answers 200 with its size, as a store holding
 * it does (an upload by hash then sends nothing).
 */
export async function startUploadStore(options: { hashRequired?: boolean; keepsBlobs?: boolean } = {}) {
  const requests: Array<{ method: string; path: string; bytes: number; sha256?: string; cut: boolean }> = [];
  /** With `keepsBlobs`: the blobs it received (by the hash of their bytes), which `HEAD` then says it has. */
  const kept = new Map<string, number>();
  const server = createServer((request: IncomingMessage, response) => {
    const seen: (typeof requests)[number] = { method: request.method!, path: request.url!, bytes: 0, cut: false };
    requests.push(seen);
    const hash = createHash('sha256');
    request.on('data', (chunk: Buffer) => {
      seen.bytes += chunk.length;
      hash.update(chunk);
    });
    request.on('close', () => (seen.cut ||= !request.complete));
    const json = (status: number, body: unknown) =>
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (request.url === '/api/artifacts/blobs' && options.hashRequired) {
      return json(409, { success: false, errorMessage: 'a bucket', code: 'ArtifactHashRequired' });
    }
    if (request.url!.endsWith('/transfers')) return void request.on('end', () => json(200, { store: 'orchestrator' }));
    if (request.method === 'HEAD') {
      const size = options.keepsBlobs ? kept.get(request.url!.split('/').at(-1)!) : undefined;
      return void (size === undefined
        ? response.writeHead(404).end()
        : response.writeHead(200, { 'content-length': String(size) }).end());
    }
    request.on('end', () => {
      seen.sha256 = hash.digest('hex');
      kept.set(seen.sha256, seen.bytes);
      json(201, { sha256: seen.sha256, size: seen.bytes, stored: true });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
