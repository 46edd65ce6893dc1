import { type OrchestratorContract, orchestratorContract } from '@mpd/contract';
import { type createExpressEndpoints, initServer } from '@ts-rest/express';
import type { NodeRegistry } from '../registry/node-registry.js';

const s = initServer();

const workerNotFound = (workerId: string) =>
  ({
    status: 404,
    body: { success: false, code: 'WorkerNotFound', errorMessage: `Worker '${workerId}' is not registered` },
  }) as const;

/** ts-rest's implementation type of the orchestrator contract (not exported by `@ts-rest/express`). */
export type OrchestratorRoutes = Parameters<typeof createExpressEndpoints<OrchestratorContract>>[1];

/** The orchestrator contract's routes, answering from `registry`. */
export function createRoutes(registry: NodeRegistry, heartbeatIntervalSeconds: number): OrchestratorRoutes {
  return s.router(orchestratorContract, {
    workers: {
      register: async ({ body }) => {
        const node = registry.register(body.workerNode);
        return { status: 200, body: { success: true, workerId: node.id, heartbeatIntervalSeconds } };
      },
      heartbeat: async ({ body }) => {
        const node = registry.heartbeat(body.workerId, body.currentLoad);
        if (!node) {
          return {
            status: 404,
            body: {
              success: false,
              code: 'WorkerNotFound',
              errorMessage: `Worker '${body.workerId}' is not registered; register again with POST /api/workers/register`,
            },
          };
        }
        return { status: 200, body: { acknowledged: true, shouldDrain: node.status === 'Draining' } };
      },
      list: async () => ({ status: 200, body: registry.list() }),
      drain: async ({ params }) => {
        if (!registry.drain(params.workerId)) {
          return workerNotFound(params.workerId);
        }
        const node = registry.get(params.workerId)!;
        return { status: 200, body: { success: true, workerId: node.id, status: node.status } };
      },
      unregister: async ({ params }) => {
        if (!registry.unregister(params.workerId)) {
          return workerNotFound(params.workerId);
        }
        return { status: 200, body: { success: true } };
      },
    },
    health: {
      get: async () => ({
        status: 200,
        body: {
          status: 'healthy',
          availableWorkers: registry.list().filter((node) => node.status === 'Available').length,
          timestamp: new Date().toISOString(),
        },
      }),
    },
  });
}
