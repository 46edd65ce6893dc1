/**
 * `node --import tsx s3-server-process.ts DATA_DIR LOG_FILE BUCKET…`: s3rver on a port of its own, and
 * in front of it a recording HTTP proxy on 127.0.0.1 (port 0) that appends one JSON line per
 * request to LOG_FILE; prints `listening on http://127.0.0.1:PORT` (the proxy's) once both listen.
 */
import { appendFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';

const [dir, log, ...buckets] = process.argv.slice(2);
const S3rver = createRequire(import.meta.url)('s3rver') as new (options: object) => {
  run(): Promise<{ port: number }>;
};
const s3rver = new S3rver({
  port: 0,
  address: '127.0.0.1',
  silent: true,
  directory: dir,
  configureBuckets: buckets.map((name) => ({ name })),
});
const { port } = await s3rver.run();

const front = createServer((req, res) => {
  let bodyBytes = 0;
  const url = new URL(req.url ?? '/', 'http://x');
  const upstream = request(
    { host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers },
    (answer) => {
      // Recorded before the client gets a byte of the answer, so that a test reading the log
      // after its call finds the request there (the body it sent has all been forwarded by now).
      appendFileSync(
        log!,
        `${JSON.stringify({
          method: req.method,
          path: url.pathname,
          query: Object.fromEntries(url.searchParams),
          headers: req.headers,
          bodyBytes,
          status: answer.statusCode,
        })}\n`,
      );
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', () => res.destroy());
  req.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
  req.pipe(upstream);
});
front.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening on http://127.0.0.1:${(front.address() as AddressInfo).port}\n`);
});
