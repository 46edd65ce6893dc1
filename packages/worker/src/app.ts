import { executeModuleRequestCheck, workerContract } from '@mpd/contract';
import { createApiApp } from '@mpd/server-kit';
import type { Application } from 'express';
import type { Logger } from 'pino';
import type { ModuleExecutor } from './executor/module-executor.js';
import type { CallGate } from './http/auth.js';
import { createRoutes } from './http/routes.js';
import { DEFAULT_WORKER_OPTIONS } from './worker-options.js';

/** What {@link createApp} needs: the executor the routes answer from, and how requests are checked. */
export interface WorkerAppDeps {
  executor: ModuleExecutor;
  logger: Logger;
  /**
   * Largest accepted JSON body (the execute body carries dependency results).
   * @default '100mb'
   */
  bodyLimit?: string;
  /**
   * Validate every response against the contract before sending it (tests turn it on).
   * @default false
   */
  validateResponses?: boolean;
  /**
   * Who may call execute and cancel now (read per call): the bearer tokens they must carry (the
   * worker's credential, a configured token), whether the worker awaits its first registration
   * (503 `WorkerNotReady` then), and whether it runs in open mode.
   * @default () => ({ accepted: [], awaitingRegistration: false, open: false }): every call refused (401)
   */
  callGate?: () => CallGate;
}

/** A gate that lets no call through: neither a token nor open mode. */
const CLOSED: CallGate = { accepted: [], awaitingRegistration: false, open: false };

/**
 * The contract as the app checks requests against it: the execute body with
 * `executeModuleRequestCheck` (the schema's rules without its copy of the body and its records:
 * a body as the orchestrator sends it is taken as it came), everything else as the contract
 * says. The OpenAPI document and the clients keep the schemas. Exported for benchmark 7's
 * `api-app` rung only (not from the package's index).
 */
export const SERVED_CONTRACT = {
  ...workerContract,
  execution: {
    ...workerContract.execution,
    execute: { ...workerContract.execution.execute, body: executeModuleRequestCheck },
  },
} as unknown as typeof workerContract;

/** The worker's express app, with every route of `workerContract`. Does not listen. */
export function createApp(deps: WorkerAppDeps): Application {
  return createApiApp({
    contract: SERVED_CONTRACT,
    routes: createRoutes(deps.executor, deps.callGate ?? (() => CLOSED)),
    // The generator is loaded on the first request for the document, not at the start (round Z, Z3).
    openApi: async () => (await import('@mpd/contract/openapi')).workerOpenApi(),
    server: 'worker',
    logger: deps.logger,
    bodyLimit: deps.bodyLimit ?? DEFAULT_WORKER_OPTIONS.bodyLimit,
    validateResponses: deps.validateResponses ?? DEFAULT_WORKER_OPTIONS.validateResponses,
  });
}
