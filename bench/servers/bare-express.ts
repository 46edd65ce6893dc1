/**
 * The heartbeat benchmark's baseline: a bare express app with `express.json()` answering
 * `POST /api/workers/heartbeat` with the same JSON as the orchestrator, and nothing else
 * (no validation, authentication, registry, security headers or rate limits).
 */
import express from 'express';
import { processStats, serveIpc } from '../lib/ipc.js';

const app = express();
app.disable('x-powered-by');
app.use(express.json({ limit: '1mb' }));
app.post('/api/workers/heartbeat', (_req, res) => {
  res.json({ acknowledged: true, shouldDrain: false });
});
const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`bare express listening on http://127.0.0.1:${port}\n`);
});
serveIpc({ stats: () => processStats() });
process.on('SIGTERM', () => server.close(() => process.exit(0)));
