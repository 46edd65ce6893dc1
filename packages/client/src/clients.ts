import { orchestratorContract, redactUrl, workerContract } from '@mpd/contract';
import { type AppRouter, initClient, type InitClientReturn } from '@ts-rest/core';
import type { ClientOptions } from './client-options.js';
import { directRoute, type RouteCall } from './direct-route.js';
import { createFetcher, type Fetcher } from './fetcher.js';
import { guardRoutes } from './route-guards.js';

interface ResolvedArgs {
  baseUrl: string;
  baseHeaders: Record<string, string>;
  api: Fetcher;
  validateResponse: boolean;
  throwOnUnknownStatus: true;
}

type Client<T extends AppRouter> = InitClientReturn<T, ResolvedArgs> & {
  /** Closes the client's connections. */
  close(): Promise<void>;
};

/** A typed client of the orchestrator API. */
export type OrchestratorClient = Client<typeof orchestratorContract>;
/** A typed client of the worker API. */
export type WorkerClient = Client<typeof workerContract>;

/**
 * The `Authorization: Bearer <token>` header for `token`, none without one: the one place the
 * client writes it, for {@link ClientOptions.token} and for a token given per call through
 * ts-rest's `extraHeaders`, such as a credential that changes at each registration:
 * `client.workers.heartbeat({ body, extraHeaders: bearerHeader(credential) })`.
 */
export function bearerHeader(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

function create<T extends AppRouter>(
  contract: T,
  options: ClientOptions,
  direct?: (client: Client<T>, args: ResolvedArgs) => void,
): Client<T> {
  if (!/^https?:\/\//i.test(options.baseUrl)) {
    throw new TypeError(
      `baseUrl must be an http:// or https:// URL, got ${JSON.stringify(redactUrl(options.baseUrl))}`,
    );
  }
  const { api, close } = createFetcher(options);
  const args: ResolvedArgs = {
    baseUrl: options.baseUrl.replace(/\/+$/, ''),
    baseHeaders: { ...options.headers, ...bearerHeader(options.token) },
    api,
    validateResponse: options.validateResponse ?? false,
    throwOnUnknownStatus: true,
  };
  const client = Object.assign(guardRoutes(contract, initClient(contract, args)), { close });
  direct?.(client, args);
  return client;
}

/**
 * A typed client of the orchestrator API (`@mpd/contract`'s `orchestratorContract`).
 * Each call resolves to `{ status, body }`; it rejects with `MpdClientError` when no
 * answer arrives, or (`UnexpectedAnswer`) when a register or drain answer names another worker
 * than the call did. Path parameters (worker ids) are percent-encoded; an empty one, `.` or `..`
 * is refused with a `TypeError` before anything is sent.
 */
export function createOrchestratorClient(options: ClientOptions): OrchestratorClient {
  return create(orchestratorContract, options);
}

/**
 * A typed client of the worker API (`@mpd/contract`'s `workerContract`). `execute` waits
 * for the module's own timeout plus a margin, however long that is.
 */
export function createWorkerClient(options: ClientOptions): WorkerClient {
  return create(workerContract, options, (client, args) => {
    // The orchestrator's one call per module: past ts-rest's client (see directRoute), same answers.
    const calls = client.execution as unknown as Record<'execute', RouteCall>;
    calls.execute = directRoute(workerContract.execution.execute, args, calls.execute);
  });
}
