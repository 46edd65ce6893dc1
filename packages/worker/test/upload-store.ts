/**
 * A store taking uploads, for the worker's upload paths (`worker-blobs.spec.ts`,
 * `hosted-artifacts.spec.ts`): moved out of `worker-blobs.spec.ts` to be shared.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A store taking uploads: `POST /api/artifacts/blobs` hashed as it arrives and answered with what
 * it hashed to (or, `hashRequired`, 409 `ArtifactHashRequired` as an orchestrator with a bucket
 * answers, and then the routes by hash: transfers, `HEAD` 404, `PUT`). Records every request, the
 * bytes each body brought so far, and whether it ended or was cut.
 */
export async function startUploadStore(options: { hashRequired?: boolean } = {}) {
  const requests: Array<{ method: string; path: string; bytes: number; sha256?: string; cut: boolean }> = [];
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
    if (request.method === 'HEAD') return void response.writeHead(404).end();
    request.on('end', () => {
      seen.sha256 = hash.digest('hex');
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
