import type { AppRoute } from '@ts-rest/core';
import { generateOpenApi } from '@ts-rest/open-api';
import { artifactsContract, orchestratorContract } from './orchestrator.contract.js';
import { workerContract } from './worker.contract.js';

type OpenApiDocument = ReturnType<typeof generateOpenApi>;

const VERSION = '0.1.0';

/** An OpenAPI security requirement: one scheme name, no scopes (bearer schemes have none). */
type SecurityRequirement = Record<string, string[]>;

/** An `http` `bearer` security scheme: `Authorization: Bearer <token>` (README "Tokens"). */
const bearer = (description: string) => ({ type: 'http', scheme: 'bearer', description }) as const;

/** The orchestrator's three kinds of bearer token (README "Tokens"). */
const orchestratorSchemes = {
  joinToken: bearer(
    'The cluster join token (MPD_JOIN_TOKEN): a worker registers with it. Checked when the orchestrator has a join token.',
  ),
  workerCredential: bearer(
    "A worker's own credential (mpdw_…), from its register answer: its heartbeats, and its own drain and unregister. Good for its own worker id only.",
  ),
  adminToken: bearer(
    'The admin token (MPD_ADMIN_TOKEN), for operators: lists the workers, drains or unregisters any of them (and may register). Checked when the orchestrator has an admin token.',
  ),
} as const;

/** The tokens a worker takes on execute and cancel (README "Tokens"). */
const workerSchemes = {
  workerCredential: bearer(
    "The worker's credential, which the orchestrator issued at its registration and sends on every execute and cancel call.",
  ),
  workerToken: bearer(
    "The worker's --token (MPD_WORKER_TOKEN): one more token it takes, for your own callers and for a worker that does not register.",
  ),
} as const;

/** For a two-level contract (`{ section: { route } }`): the scheme names each route takes. */
type SecurityBySection<Contract, Scheme extends string> = {
  [Section in keyof Contract]: { [Route in keyof Contract[Section]]: readonly Scheme[] };
};

/**
 * Which tokens each route takes, one entry per route of the contract (the typecheck fails when a
 * route has none), as alternatives: any one of them is enough. An empty list: no token (health).
 * The orchestrator checks a token only when it is configured; these are the routes' requirements
 * with the tokens set, as in the README's "Who may call what" table.
 */
const orchestratorSecurity: SecurityBySection<typeof orchestratorContract, keyof typeof orchestratorSchemes> = {
  workers: {
    register: ['joinToken', 'adminToken'],
    heartbeat: ['workerCredential'],
    list: ['adminToken'],
    drain: ['workerCredential', 'adminToken'],
    unregister: ['workerCredential', 'adminToken'],
  },
  health: { get: [] },
  artifacts: {
    getBlob: ['workerCredential', 'adminToken'],
    putBlob: ['workerCredential', 'adminToken'],
    uploadBlob: ['workerCredential', 'adminToken'],
    transfer: ['workerCredential', 'adminToken'],
  },
  executions: { output: ['workerCredential'] },
};

const workerSecurity: SecurityBySection<typeof workerContract, keyof typeof workerSchemes> = {
  execution: { execute: ['workerCredential', 'workerToken'], cancel: ['workerCredential', 'workerToken'] },
  health: { get: [] },
};

const routeKey = (route: Pick<AppRoute, 'method' | 'path'>): string => `${route.method} ${route.path}`;

/**
 * ts-rest's `operationMapper` adding each operation's `security` from `table`. Throws on a route
 * the table does not name (cannot happen while the table's type follows the contract).
 */
function securityMapper(
  contract: Record<string, Record<string, AppRoute>>,
  table: Record<string, Record<string, readonly string[]>>,
) {
  const byRoute = new Map<string, SecurityRequirement[]>();
  for (const [section, routes] of Object.entries(contract)) {
    for (const [name, route] of Object.entries(routes)) {
      const schemes = table[section]?.[name];
      if (schemes === undefined) throw new Error(`no security declared for ${section}.${name}`);
      byRoute.set(
        routeKey(route),
        schemes.map((scheme) => ({ [scheme]: [] })),
      );
    }
  }
  return <T extends object>(operation: T, route: AppRoute): T => {
    const security = byRoute.get(routeKey(route));
    if (security === undefined) throw new Error(`no security declared for ${routeKey(route)}`);
    // `security: []` says "no token" explicitly (linters want every operation to declare it).
    return withByteBodies({ ...operation, security }, route);
  };
}

/** Raw bytes in OpenAPI 3.0: a binary string. */
const BYTES = { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } };

/**
 * The artifact store's routes carry raw bytes, which ts-rest's generator does not describe (it
 * knows JSON, forms and multipart): the blob upload's body and the download's 200 are written in.
 */
function withByteBodies<T extends object>(operation: T, route: AppRoute): T {
  if (route.path !== artifactsContract.putBlob.path) return operation;
  const described = operation as T & { responses?: Record<string, object> };
  if (route.method === 'PUT') return { ...described, requestBody: { required: true, content: BYTES } };
  return { ...described, responses: { ...described.responses, 200: { description: 'the blob', content: BYTES } } };
}

/**
 * OpenAPI 3.0 writes an exclusive bound as `minimum: n, exclusiveMinimum: true` (JSON Schema
 * draft 4); the generator (`@anatine/zod-openapi`) writes `exclusiveMinimum: n`, the 3.1 form,
 * which 3.0 validators and importers (Redocly, swagger-parser, Postman) refuse. Returns `node`
 * with every such bound rewritten, `minimum`/`maximum` set to the bound.
 */
function withOpenApi30Bounds<T>(node: T): T {
  if (Array.isArray(node)) return node.map(withOpenApi30Bounds) as T;
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) out[key] = withOpenApi30Bounds(value);
  for (const [exclusive, inclusive] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    const bound = out[exclusive];
    if (typeof bound === 'number') {
      out[inclusive] = bound;
      out[exclusive] = true;
    }
  }
  return out as T;
}

function document(
  contract: Parameters<typeof generateOpenApi>[0],
  info: { title: string; description: string },
  port: number,
  schemes: Record<string, ReturnType<typeof bearer>>,
  security: Record<string, Record<string, readonly string[]>>,
): OpenApiDocument {
  return withOpenApi30Bounds(
    generateOpenApi(
      contract,
      {
        info: { ...info, version: VERSION, license: { name: 'MIT', url: 'https://opensource.org/license/mit' } },
        // The committed files name the default port; a server's `GET /api/openapi.json` replaces
        // this with the address it was fetched from (server-kit's openapi-route).
        servers: [{ url: `http://localhost:${port}`, description: `the default port (${port}) on this machine` }],
        components: { securitySchemes: schemes },
      },
      {
        setOperationId: 'concatenated-path',
        operationMapper: securityMapper(contract as Record<string, Record<string, AppRoute>>, security),
      },
    ),
  );
}

/** The orchestrator API as an OpenAPI 3.0 document (served at `GET /api/openapi.json`). */
export function orchestratorOpenApi(): OpenApiDocument {
  return document(
    orchestratorContract,
    {
      title: 'mpd orchestrator API',
      description:
        'Workers register, send heartbeats and are listed here; the orchestrator dispatches pipeline modules to them. Every route but GET /api/health takes a bearer token: the join token, a worker credential or the admin token, per route.',
    },
    8080,
    orchestratorSchemes,
    orchestratorSecurity,
  );
}

/** The worker API as an OpenAPI 3.0 document (served at `GET /api/openapi.json`). */
export function workerOpenApi(): OpenApiDocument {
  return document(
    workerContract,
    {
      title: 'mpd worker API',
      description:
        'The orchestrator sends modules to a worker to execute, and may cancel them, with the worker credential as bearer token.',
    },
    9000,
    workerSchemes,
    workerSecurity,
  );
}
