/**
 * The artifact benchmark's baseline: a bare node `http` server that writes the body of
 * `PUT /blob` to a file in MPD_BENCH_BARE_DIR and answers `GET /blob` with that file, streamed
 * (no authentication, hashing, validation or temporary file).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { processStats, serveIpc } from '../lib/ipc.js';

const file = join(process.env.MPD_BENCH_BARE_DIR ?? '.', 'blob');
const server = createServer((req, res) => {
  const fail = (error: unknown): void => {
    res.statusCode = 500;
    res.end(String(error));
  };
  if (req.method === 'PUT') {
    pipeline(req, createWriteStream(file)).then(() => res.end(), fail);
  } else if (req.method === 'GET') {
    stat(file).then((info) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': info.size });
      return pipeline(createReadStream(file), res);
    }, fail);
  } else {
    res.statusCode = 405;
    res.end();
  }
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`bare http listening on http://127.0.0.1:${port}\n`);
});
serveIpc({ stats: () => processStats() });
process.on('SIGTERM', () => server.close(() => process.exit(0)));
