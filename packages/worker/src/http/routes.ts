import { errorResponse, parseTimeSpan, type WorkerContract, workerContract } from '@mpd/contract';
import type { JsonValue } from '@mpd/pipeline';
import { bearerToken, unauthorized } from '@mpd/server-kit';
import { type createExpressEndpoints, initServer } from '@ts-rest/express';
import type { Request, Response } from 'express';
import type { ExecuteModuleBody, ExecutionRequest } from '../executor/execution.js';
import type { ModuleExecutor } from '../executor/module-executor.js';
import { requestFingerprint } from '../executor/request-fingerprint.js';
import { type CallGate, mayCallWhenReady } from './auth.js';

const s = initServer();

/** ts-rest's implementation type of the worker contract (not exported by `@ts-rest/express`). */
export type WorkerRoutes = Parameters<typeof createExpressEndpoints<WorkerContract>>[1];

/**
 * The worker contract's routes, answering from `executor`. Execute and cancel go through as
 * `callGate()` says (read per call: the credential changes at each registration).
 */
export function createRoutes(executor: ModuleExecutor, callGate: () => CallGate): WorkerRoutes {
  /** 401, or 503 `WorkerNotReady` with `Retry-After`, unless the call may go through (see `mayCallWhenReady`). */
  const authenticate = async (req: Request, res: Response) => {
    const denial = await mayCallWhenReady(bearerToken(req), callGate);
    if (!denial) return undefined;
    if (denial.status === 401) return unauthorized(res, denial.message);
    res.setHeader('Retry-After', String(denial.retryAfterSeconds));
    return errorResponse('WorkerNotReady', denial.message);
  };

  return s.router(workerContract, {
    execution: {
      execute: async ({ body, req, res }) => {
        const denied = await authenticate(req, res);
        if (denied) return denied;
        const parsed = parseExecuteBody(body);
        if ('error' in parsed) return parsed.error;
        const decision = executor.execute(parsed.request);
        switch (decision.kind) {
          case 'started':
          case 'joined':
            return decision.outcome;
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
      cancel: async ({ body, req, res }) => {
        const denied = await authenticate(req, res);
        if (denied) return denied;
        return executor.cancel(body.executionId, body.reason)
          ? { status: 200, body: { success: true } }
          : errorResponse('ExecutionNotFound', 'Execution not found');
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
}

/**
 * The execute body with its texts parsed, each once: `serializedModule` into `params` (blank
 * text: none), every dependency result into its value, the TimeSpan `timeout` into `timeoutMs`;
 * or the 400 naming the first field that is not JSON text.
 */
function parseExecuteBody(
  body: ExecuteModuleBody,
): { request: ExecutionRequest } | { error: ReturnType<typeof errorResponse<'ValidationFailed'>> } {
  const { serializedModule, dependencyResults, timeout, ...rest } = body;
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
  return { request: { ...rest, params, dependencyResults: results, timeoutMs, fingerprint: requestFingerprint(body) } };
}
