import { generateOpenApi } from '@ts-rest/open-api';
import { orchestratorContract } from './orchestrator.contract.js';
import { workerContract } from './worker.contract.js';

type OpenApiDocument = ReturnType<typeof generateOpenApi>;

const VERSION = '0.1.0';

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
        description: 'The orchestrator sends modules to a worker to execute, and may cancel them.',
      },
    },
    { setOperationId: 'concatenated-path' },
  );
}
