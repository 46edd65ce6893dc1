import {
  errorResponse,
  type HeartbeatCancel,
  IDEMPOTENCY_KEY_HEADER,
  type OrchestratorContract,
  orchestratorContract,
  type WorkerNode,
} from '@mpd/contract';
import { forbidden, refuseUnread, unauthorized } from '@mpd/server-kit';
import { type createExpressEndpoints, initServer } from '@ts-rest/express';
import type { Request, RequestHandler, Response } from 'express';
import { RegistrationError, type RegistrationErrorCode } from '../errors.js';
import type { ResolvedOrchestratorOptions } from '../orchestrator-options.js';
import type { NodeRegistry } from '../registry/node-registry.js';
import {
  type Caller,
  callerOf,
  type Denial,
  mayActOnWorker,
  mayAdminister,
  mayHeartbeat,
  mayRegister,
  mayUseArtifacts,
  mayWriteOutput,
} from './auth.js';
import type { ArtifactStore } from '../artifacts/artifact-store.js';
import { blobRoutes, blobTransfer } from './artifact-routes.js';
import type { ExecutionLogs } from '../runner/execution-logs.js';
import type { WorkerEndpointPolicy } from './endpoint-policy.js';
import { type FailureLimiter, heartbeatLimiter, type LimitedCaller, registerLimiter } from './rate-limits.js';

const s = initServer();

const workerNotFound = (workerId: string) => errorResponse('WorkerNotFound', `Worker '${workerId}' is not registered`);

const deny = (res: Response, denial: Denial) =>
  denial.status === 401 ? unauthorized(res, denial.message) : forbidden(denial.message);

/** The refusals every call a worker makes about itself may meet (409). */
const CONFLICTS = ['WorkerIdTaken', 'WorkerReplaced'] as const;
/** A registration's refusals: those, and want of room (503 with `Retry-After`). */
const REGISTRATION_REFUSALS = [...CONFLICTS, 'TooManyWorkers', 'TooManyPipelines'] as const;

/**
 * Runs a registry call; a {@link RegistrationError} of one of `codes` becomes its answer
 * (`WorkerIdTaken`, `WorkerReplaced` for a process whose id another incarnation took: 409;
 * `TooManyWorkers`, `TooManyPipelines`: 503 with `Retry-After`), anything else is thrown on.
 */
function refusedAs<T, C extends RegistrationErrorCode>(
  codes: readonly C[],
  res: Response,
  call: () => T,
): { done: T; refused?: never } | { refused: ReturnType<typeof errorResponse<C>> } {
  try {
    return { done: call() };
  } catch (error) {
    if (!(error instanceof RegistrationError) || !(codes as readonly string[]).includes(error.code)) throw error;
    if (error.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(error.retryAfterSeconds));
    return { refused: errorResponse(error.code as C, error.message) };
  }
}

/** The handler of a route its middleware always answers (the artifact store's streamed routes). */
const answeredByMiddleware = async (): Promise<never> => {
  throw new Error('this route is answered by its middleware');
};

/** ts-rest's implementation type of the orchestrator contract (not exported by `@ts-rest/express`). */
export type OrchestratorRoutes = Parameters<typeof createExpressEndpoints<OrchestratorContract>>[1];

/**
 * The orchestrator contract's routes, answering from `registry`. Each route but health runs, as
 * route middleware before its body is read (attached to the contract's route, so no path is
 * written again here): `failures.guard` (the lockout and failed-request budget), its
 * authentication and authorization (401/403), then its rate limit. A request refused there
 * costs no parsing or validation, whatever its body (issue 11). Only the heartbeat's check that
 * a credential names its own worker waits for the body.
 */
export function createRoutes(
  registry: NodeRegistry,
  options: ResolvedOrchestratorOptions,
  endpointPolicy: WorkerEndpointPolicy,
  failures: FailureLimiter,
  executionLogs: ExecutionLogs,
  artifactStore: ArtifactStore,
): OrchestratorRoutes {
  const tokens = { joinToken: options.joinToken, adminToken: options.adminToken };
  const caller = (req: Request): Caller => callerOf(req, tokens, registry);
  /** Who a rate limit counts a request for: its token holder, or its address without a valid token. */
  const limited = (req: Request): LimitedCaller => {
    const authenticated = caller(req);
    return authenticated.kind === 'anonymous' || authenticated.kind === 'invalid' ? { kind: 'address' } : authenticated;
  };
  /** Route middleware: the denial `decide` gives, answered before the body is read, or on. */
  const authorize =
    (decide: (caller: Caller, req: Request) => Denial | undefined): RequestHandler =>
    (req, res, next) => {
      const denial = decide(caller(req), req);
      if (denial === undefined) return next();
      refuseUnread(req, res, { code: denial.status === 401 ? 'Unauthorized' : 'Forbidden', message: denial.message });
    };
  const workerIdParam = (req: Request): string => String(req.params.workerId);
  const actOnWorker = authorize((who, req) => mayActOnWorker(who, tokens, workerIdParam(req)));
  const blobs = blobRoutes(artifactStore, options.maxArtifactBytes, options.logger);
  const artifactsAuth = [failures.guard, authorize(mayUseArtifacts)];
  return s.router(orchestratorContract, {
    workers: {
      register: {
        middleware: [
          failures.guard,
          authorize((who) => mayRegister(who, tokens)),
          registerLimiter(options.rateLimits.registerPerMinute, limited),
        ],
        handler: async ({ body, headers, req, res }) => {
          // Where this request arrived is the orchestrator's own address, whoever listens where.
          const reachedAt = { host: req.socket.localAddress ?? '', port: req.socket.localPort ?? 0 };
          const refusal = await endpointPolicy.check(body.workerNode.endpoint, reachedAt);
          if (refusal) {
            const field = 'body.workerNode.endpoint';
            const message = `${JSON.stringify(body.workerNode.endpoint)} is not allowed: ${refusal.reason}`;
            return errorResponse('EndpointNotAllowed', `${field}: ${message}`, [{ field, message }]);
          }
          // With or without a join token: a live worker's id is refused (409) unless the request
          // presents its credential, so no one can take a worker's place or learn its credential;
          // or is that worker's own retry after a lost answer (its registration key, never logged).
          const registered = refusedAs(REGISTRATION_REFUSALS, res, () =>
            registry.register(body.workerNode, {
              credential: body.credential,
              exclusive: true,
              incarnation: body.incarnation,
              retryKey: headers[IDEMPOTENCY_KEY_HEADER],
              sequence: body.sequence,
            }),
          );
          if (registered.refused) return registered.refused;
          const node = registered.done;
          return {
            status: 200,
            body: {
              success: true,
              workerId: node.id,
              heartbeatIntervalSeconds: options.heartbeatIntervalSeconds,
              credential: registry.credentialOf(node.id)!,
              heartbeatTimeoutSeconds: registry.heartbeatTimeoutMs / 1000,
            },
          };
        },
      },
      heartbeat: {
        middleware: [
          failures.guard,
          authorize((who) => mayHeartbeat(who, tokens)),
          heartbeatLimiter(options.rateLimits.heartbeatPerMinute, limited),
        ],
        handler: async ({ body, req, res }) => {
          // The credential must be the named worker's own: this one check needs the body.
          const who = caller(req);
          const denial = mayHeartbeat(who, tokens, body.workerId);
          if (denial) return deny(res, denial);
          // What the worker runs (`executions`) is taken from the worker's own credential only: a
          // run ends an abandoned attempt its worker's heartbeats stop listing, and settles its
          // cancel, so an anonymous heartbeat (no join token) claiming nothing runs would let a
          // second attempt start beside the first. Without it the heartbeat says nothing of them:
          // `executions` undefined on purpose, never [] (the run skips such a beat, and counts
          // unlisted beats from the worker's own heartbeats only).
          const own = who.kind === 'worker' && who.workerId === body.workerId;
          const acknowledged = refusedAs(CONFLICTS, res, () =>
            registry.heartbeat(body.workerId, body.currentLoad, {
              executions: own ? body.executions : undefined,
              finished: own ? body.finished : undefined,
              incarnation: body.incarnation,
            }),
          );
          if (acknowledged.refused) return acknowledged.refused;
          const node = acknowledged.done;
          if (!node) {
            const { method, path } = orchestratorContract.workers.register;
            return errorResponse(
              'WorkerNotFound',
              `Worker '${body.workerId}' is not registered; register again with ${method} ${path}`,
            );
          }
          const cancel = registry.cancelsFor(body.workerId);
          return {
            status: 200,
            body: {
              acknowledged: true,
              shouldDrain: node.status === 'Draining',
              ...(cancel.length > 0 ? { cancel: cancel as HeartbeatCancel[] } : {}),
            },
          };
        },
      },
      list: {
        middleware: [failures.guard, authorize((who) => mayAdminister(who, tokens))],
        // Serialised at once: the shared frozen nodes do, without a copy of every worker's pipeline.
        handler: async () => ({ status: 200, body: registry.snapshot() as WorkerNode[] }),
      },
      drain: {
        middleware: [failures.guard, actOnWorker],
        handler: async ({ params, query, res }) => {
          const drained = refusedAs(CONFLICTS, res, () => registry.drain(params.workerId, query));
          if (drained.refused) return drained.refused;
          if (!drained.done) return workerNotFound(params.workerId);
          const node = registry.get(params.workerId)!;
          return { status: 200, body: { success: true, workerId: node.id, status: node.status } };
        },
      },
      unregister: {
        middleware: [failures.guard, actOnWorker],
        handler: async ({ params, query, res }) => {
          const unregistered = refusedAs(CONFLICTS, res, () => registry.unregister(params.workerId, query));
          if (unregistered.refused) return unregistered.refused;
          if (!unregistered.done) return workerNotFound(params.workerId);
          return { status: 200, body: { success: true } };
        },
      },
    },
    // --- artifacts (issue 13, slice A) ---
    // Raw byte bodies, streamed: the route middleware answers, the handler never runs.
    artifacts: {
      getBlob: { middleware: [...artifactsAuth, blobs.get], handler: answeredByMiddleware },
      putBlob: { middleware: [...artifactsAuth, blobs.put], handler: answeredByMiddleware },
      uploadBlob: { middleware: [...artifactsAuth, blobs.post], handler: answeredByMiddleware },
      transfer: {
        middleware: artifactsAuth,
        handler: ({ params, body }) => blobTransfer(artifactStore, options.maxArtifactBytes, params.sha256, body),
      },
    },
    executions: {
      output: {
        // No rate limit of its own: a worker sends a batch at most every few hundred ms per
        // execution it runs, and a refused batch would only be sent again.
        middleware: [failures.guard, authorize((who) => mayWriteOutput(who))],
        handler: async ({ params, body, req, res }) => {
          const who = caller(req);
          const denial = mayWriteOutput(who, body.workerId);
          if (denial) return deny(res, denial);
          const appended = await executionLogs.append(params.executionId, body.workerId, body, (error, file) =>
            options.logger.error(
              { err: error, file, executionId: params.executionId },
              'could not write to an execution log file',
            ),
          );
          if (appended.kind === 'not-found') {
            // The same answer whether the execution is another worker's or does not exist.
            return errorResponse(
              'ExecutionNotFound',
              `No execution '${params.executionId}' was dispatched to worker '${body.workerId}'`,
            );
          }
          if (appended.kind === 'gap') {
            const refused = errorResponse(
              'OutputGap',
              `body.fromSeq: the batch starts at line ${body.fromSeq}, past the next expected line ${appended.expectedSeq}; send again from there`,
              [{ field: 'body.fromSeq', message: `expected at most ${appended.expectedSeq}` }],
            );
            return { status: refused.status, body: { ...refused.body, expectedSeq: appended.expectedSeq } };
          }
          return { status: 200, body: { acceptedThrough: appended.acceptedThrough } };
        },
      },
    },
    health: {
      get: async () => ({
        status: 200,
        body: {
          status: 'healthy',
          availableWorkers: registry.snapshot().filter((node) => node.status === 'Available').length,
          timestamp: new Date().toISOString(),
        },
      }),
    },
  });
}
