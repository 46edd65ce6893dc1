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

/**
 * Refuses a `baseUrl` that is not an http(s) URL a URL parser takes (WHATWG `new URL`, as undici
 * parses it), with a `TypeError` that shows it through `redactUrl` and has no `cause`: the
 * parser's own error keeps the raw text, password included, as its `input` (review of round N:
 * `http://user:p#ss-word@host` passed a scheme check and undici's `Invalid URL` echoed it).
 * Used by both client factories and `ArtifactClient` (not part of the package's API).
 */
export function checkBaseUrl(baseUrl: string): void {
  let protocol: string | undefined;
  try {
    protocol = new URL(baseUrl).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol !== 'http:' && protocol !== 'https:') {
    // Thrown outside the catch: no cause (the parser's error holds the raw URL).
    throw new TypeError(`baseUrl must be an http:// or https:// URL, got ${JSON.stringify(redactUrl(baseUrl))}`);
  }
}

function create<T extends AppRouter>(
  contract: T,
  options: ClientOptions,
  direct?: (client: Client<T>, args: ResolvedArgs) => void,
): Client<T> {
  checkBaseUrl(options.baseUrl);
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
