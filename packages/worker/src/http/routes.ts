import {
  ACCEPT_OUTPUT_HEADER,
  errorResponse,
  OUTPUT_HEADER,
  OUTPUT_NONE,
  parseTimeSpan,
  type WorkerContract,
  workerContract,
} from '@mpd/contract';
import type { JsonValue } from '@mpd/pipeline';
import { bearerToken, type Refusal, refuseUnread } from '@mpd/server-kit';
import { type createExpressEndpoints, initServer } from '@ts-rest/express';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { ExecuteModuleBody, ExecutionRequest } from '../executor/execution.js';
import type { ModuleExecutor } from '../executor/module-executor.js';
import { type CallGate, type Denial, mayCallWhenReady } from './auth.js';
import { requestFingerprint } from '../executor/request-fingerprint.js';

const s = initServer();

/** ts-rest's implementation type of the worker contract (not exported by `@ts-rest/express`). */
export type WorkerRoutes = Parameters<typeof createExpressEndpoints<WorkerContract>>[1];

/** The contract's code for each status {@link mayCallWhenReady} may refuse with. */
const DENIAL_CODES = { 401: 'Unauthorized', 503: 'WorkerNotReady' } as const satisfies Record<
  Denial['status'],
  Refusal['code']
>;

/**
 * The worker contract's routes, answering from `executor`. Execute and cancel go through as
 * `callGate()` says (read per call: the credential changes at each registration), checked by
 * their route middleware before the body is read: a refused call's body is never parsed or
 * validated, whatever its size (issue 11).
 */
export function createRoutes(executor: ModuleExecutor, callGate: () => CallGate): WorkerRoutes {
  /** Refuses (401, or 503 `WorkerNotReady` with `Retry-After`: see `mayCallWhenReady`) unless the call may go on. */
  const authenticate: RequestHandler = (req, res, next) => {
    const verdict = mayCallWhenReady(bearerToken(req), callGate);
    // A closure only for a held call: a final verdict is judged without one (issue 14, round P).
    if (verdict instanceof Promise) verdict.then((denial) => judge(req, res, next, denial), next);
    else judge(req, res, next, verdict);
  };

  const routes = s.router(workerContract, {
    execution: {
      execute: async ({ body, req, res }) => {
        const parsed = parseExecuteBody(body);
        if ('error' in parsed) return parsed.error;
        const decision = executor.execute(parsed.request);
        switch (decision.kind) {
          case 'started':
          case 'joined': {
            const outcome = await decision.outcome;
            // Said in the answer, to an orchestrator that reads it, instead of by a final output
            // batch with no line: that batch was a second HTTP exchange per module (issue 14).
            if (req.headers[ACCEPT_OUTPUT_HEADER] === OUTPUT_NONE && executor.outputEndedEmpty(body.executionId))
              res.setHeader(OUTPUT_HEADER, OUTPUT_NONE);
            return outcome;
          }
          // A cancel arrived first (a tombstone): nothing ran, and no output batch will come.
          case 'cancelled': {
            const outcome = await decision.outcome;
            if (req.headers[ACCEPT_OUTPUT_HEADER] === OUTPUT_NONE) res.setHeader(OUTPUT_HEADER, OUTPUT_NONE);
            return outcome;
          }
          // Refusals carry no `Mpd-Output: none`: the orchestrator takes a refusal of a call
          // with no earlier one on the way as "nothing ran" and drops the attempt's log itself;
          // after an earlier call failed on the way it sends the call again (the auth middleware's
          // 503 may answer a re-send of an execution that runs here: the header would be untrue).
          case 'busy':
            res.setHeader('Retry-After', '1');
            return errorResponse(
              'WorkerAtCapacity',
              `Worker is running ${decision.load} of ${decision.slots} modules; try again later or on another worker`,
            );
          case 'draining':
            return errorResponse('WorkerDraining', 'Worker is draining and takes no new modules');
          case 'fenced':
            return errorResponse('WorkerDraining', decision.message);
          case 'unknown-module':
            return errorResponse('ModuleNotFound', decision.message);
          case 'conflict':
            return errorResponse('ExecutionIdConflict', decision.message);
        }
      },
      cancel: async ({ body }) => {
        const { executionId } = body;
        if (executor.cancel(executionId, body.reason)) return { status: 200, body: { success: true } };
        // Nothing runs under that id: the spec's 404, its errorMessage exactly (review S, 2). One
        // that finished here says so (`finished`, see the contract's `cancelNotFoundSchema`): its
        // outcome is kept, to be collected (round R, R1).
        // `keptForMs`: how much longer it is kept, so that the collect comes no later (review S, 3).
        const notFound = errorResponse('ExecutionNotFound', 'Execution not found');
        const keptForMs = executor.outcomeKeptForMs(executionId);
        if (keptForMs === undefined) return notFound;
        return { status: notFound.status, body: { ...notFound.body, finished: true as const, keptForMs } };
      },
    },
    health: {
      get: async () => ({
        status: 200,
        body: {
          status: 'healthy',
          currentLoad: executor.load,
          maxLoad: executor.slots,
          timestamp: new Date().toISOString(),
        },
      }),
    },
  });
  return withMiddleware(routes, authenticate);
}

/** Lets the call go on (`next`) when there is no `denial`, else refuses it unread (see {@link createRoutes}). */
function judge(req: Request, res: Response, next: NextFunction, denial: Denial | undefined): void {
  if (denial === undefined) return next();
  refuseUnread(req, res, {
    code: DENIAL_CODES[denial.status],
    message: denial.message,
    retryAfterSeconds: denial.retryAfterSeconds,
  });
}

/** `routes` with `authenticate` as the route middleware of execute and cancel. */
function withMiddleware(routes: WorkerRoutes, authenticate: RequestHandler): WorkerRoutes {
  const { execute, cancel } = routes.execution;
  if (typeof execute !== 'function' || typeof cancel !== 'function') {
    throw new TypeError('execute and cancel are expected as plain handlers');
  }
  return {
    ...routes,
    execution: {
      execute: { middleware: [authenticate], handler: execute },
      cancel: { middleware: [authenticate], handler: cancel },
    },
  };
}

/**
 * The execute body with its texts parsed, each once: `serializedModule` into `params` (blank
 * text: none), every dependency result into its value, the TimeSpan `timeout` into `timeoutMs`;
 * or the 400 naming the first field that is not JSON text. Exported for its spec; not part of
 * the package's API.
 */
export function parseExecuteBody(
  body: ExecuteModuleBody,
): { request: ExecutionRequest } | { error: ReturnType<typeof errorResponse<'ValidationFailed'>> } {
  const { serializedModule, dependencyResults, timeout } = body;
  let params: JsonValue | undefined;
  if (serializedModule.trim() !== '') {
    try {
      params = JSON.parse(serializedModule) as JsonValue;
    } catch {
      const issues = [{ field: 'body.serializedModule', message: "must be the module's parameters as JSON text" }];
      return { error: errorResponse('ValidationFailed', 'body.serializedModule: must be JSON text', issues) };
    }
  }
  const results: Record<string, JsonValue> = {};
  for (const [name, text] of Object.entries(dependencyResults)) {
    try {
      results[name] = JSON.parse(text) as JsonValue;
    } catch {
      const field = `body.dependencyResults.${name}`;
      return {
        error: errorResponse('ValidationFailed', `${field}: must be JSON text`, [
          { field, message: 'must be JSON text' },
        ]),
      };
    }
  }
  const timeoutMs = timeout === undefined ? undefined : parseTimeSpan(timeout);
  // Every field written out, not `{ ...rest, … }` (rest of a destructuring, then spread with more
  // fields): on Node 20 (V8 11.3) that made a new hidden class per request, and every site
  // reading a request missed V8's caches once per module (issue 14, round L).
  const request: ExecutionRequest = {
    executionId: body.executionId,
    moduleTypeName: body.moduleTypeName,
    environmentVariables: body.environmentVariables,
    secretEnvironmentVariables: body.secretEnvironmentVariables,
    workingDirectory: body.workingDirectory,
    timestamp: body.timestamp,
    params,
    dependencyResults: results,
    timeoutMs,
    fingerprint: requestFingerprint(body, timeoutMs),
  };
  return { request };
}
