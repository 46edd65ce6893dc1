import { generateOpenApi } from '@ts-rest/open-api';
import { orchestratorContract } from './orchestrator.contract.js';
import { workerContract } from './worker.contract.js';

type OpenApiDocument = ReturnType<typeof generateOpenApi>;

const VERSION = '0.1.0';

/** Bearer tokens: every route but `GET /api/health` takes one when the server has tokens configured. */
const security = {
  components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
} as const;

const options = {
  setOperationId: 'concatenated-path',
  operationMapper: <T extends object>(operation: T, route: { path: string }): T =>
    route.path === '/api/health' ? operation : { ...operation, security: [{ bearerAuth: [] }] },
} as const;

/** The orchestrator API as an OpenAPI 3 document (served at `GET /api/openapi.json`). */
export function orchestratorOpenApi(): OpenApiDocument {
  return generateOpenApi(
    orchestratorContract,
    {
      info: {
        title: 'mpd orchestrator API',
        version: VERSION,
        description:
          'Workers register, send heartbeats and are listed here; the orchestrator dispatches pipeline modules to them.',
      },
    },
    { setOperationId: 'concatenated-path' },
  );
}

/** The worker API as an OpenAPI 3 document (served at `GET /api/openapi.json`). */
export function workerOpenApi(): OpenApiDocument {
  return generateOpenApi(
    workerContract,
    {
      info: {
        title: 'mpd worker API',
        version: VERSION,
        description:
          'The orchestrator sends modules to a worker to execute, and may cancel them, with the worker credential as bearer token.',
      },
      ...security,
    },
    options,
  );
}
