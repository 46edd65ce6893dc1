/**
 * An example of another service using only `@mpd/client`: checks an orchestrator's health
 * and lists its workers.
 *
 *   MPD_ADMIN_TOKEN=... pnpm --filter @mpd/cluster-status start http://127.0.0.1:8080
 *
 * Exits 0 when the orchestrator is healthy and has at least one available worker, 1 when
 * it has none, 2 when it cannot be reached.
 */
import { createOrchestratorClient, MpdClientError } from '@mpd/client';

const baseUrl = process.argv[2] ?? process.env.MPD_ORCHESTRATOR_URL ?? 'http://127.0.0.1:8080';
// Listing workers takes the admin token when the orchestrator has one.
const adminToken = process.env.MPD_ADMIN_TOKEN;
const orchestrator = createOrchestratorClient({
  baseUrl,
  timeoutMs: 5_000,
  ...(adminToken ? { token: adminToken } : {}),
});

try {
  const health = await orchestrator.health.get();
  const workers = await orchestrator.workers.list();
  if (health.status !== 200 || workers.status !== 200) {
    console.error(`[status] unexpected answers from ${baseUrl}: health ${health.status}, workers ${workers.status}`);
    process.exitCode = 1;
  } else {
    console.log(
      `[status] orchestrator ${baseUrl} is ${health.body.status}: ${health.body.availableWorkers} available worker(s)`,
    );
    for (const worker of workers.body) {
      const { os, maxParallelModules, tags } = worker.capabilities;
      console.log(
        `[status]   ${worker.id}  ${worker.status.padEnd(9)}  load ${worker.currentLoad}/${maxParallelModules}  ${os}  ` +
          `tags [${tags.join(', ')}]  pipeline ${worker.pipeline?.name ?? '-'}  last heartbeat ${worker.lastHeartbeat}`,
      );
    }
    process.exitCode = health.body.availableWorkers > 0 ? 0 : 1;
  }
} catch (error) {
  console.error(`[status] ${error instanceof MpdClientError ? `${error.code}: ${error.message}` : String(error)}`);
  process.exitCode = 2;
} finally {
  await orchestrator.close();
}
