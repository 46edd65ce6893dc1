import { errorResponse, OPENAPI_PATH, workerContract, workerOpenApi } from '@mpd/contract';
import {
  apiSecurityHeaders,
  bearerToken,
  finalErrorHandler,
  handleRequestValidationError,
  openApiRoute,
  requireJsonBody,
  routeNotFound,
  safeEqual,
  unauthorized,
} from '@mpd/server-kit';
import type { JsonValue } from '@mpd/pipeline';
import { initServer, createExpressEndpoints } from '@ts-rest/express';
import express, { type Application, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { ModuleExecutor } from './executor/module-executor.js';

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
   * The bearer tokens execute and cancel calls must carry (the worker's credential, a configured
   * token). None: the calls are open (a worker that never registered, on a trusted network).
   * @default () => []
   */
  acceptedTokens?: () => readonly string[];
}

/** The worker's express app, with every route of `workerContract`. Does not listen. */
export function createApp(deps: WorkerAppDeps): Application {
  const { executor, logger } = deps;
  const s = initServer();
  const acceptedTokens = deps.acceptedTokens ?? (() => []);
  /** 401 unless the call carries an accepted token (compared in constant time). */
  const authenticate = (req: Request, res: Response) => {
    const accepted = acceptedTokens();
    if (accepted.length === 0) return undefined;
    const token = bearerToken(req);
    if (token !== undefined && accepted.some((candidate) => safeEqual(token, candidate))) return undefined;
    return unauthorized(
      res,
      token === undefined
        ? 'execute and cancel take the bearer token the orchestrator got for this worker'
        : 'the bearer token is not valid for this worker',
    );
  };

  const router = s.router(workerContract, {
    execution: {
      execute: async ({ body, req, res }) => {
        const denied = authenticate(req, res);
        if (denied) return denied;
        let params: JsonValue | undefined;
        if (body.serializedModule.trim() !== '') {
          try {
            params = JSON.parse(body.serializedModule) as JsonValue;
          } catch {
            const issues = [
              { field: 'body.serializedModule', message: "must be the module's parameters as JSON text" },
            ];
            return errorResponse('ValidationFailed', 'body.serializedModule: must be JSON text', issues);
          }
        }
        for (const [name, text] of Object.entries(body.dependencyResults)) {
          if (!isJson(text)) {
            const field = `body.dependencyResults.${name}`;
            return errorResponse('ValidationFailed', `${field}: must be JSON text`, [
              { field, message: 'must be JSON text' },
            ]);
          }
        }
        const decision = executor.execute({ ...body, params });
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
          case 'unknown-module':
            return errorResponse('ModuleNotFound', decision.message);
        }
      },
      cancel: async ({ body, req, res }) => {
        const denied = authenticate(req, res);
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

  const app = express();
  app.disable('x-powered-by');
  // No ETag: answers are live state, never cached or revalidated, and hashing each body costs.
  app.set('etag', false);
  const bodyLimit = deps.bodyLimit ?? '100mb';
  app.use(apiSecurityHeaders());
  app.use(requireJsonBody);
  app.use(express.json({ limit: bodyLimit }));
  app.get(OPENAPI_PATH, openApiRoute(workerOpenApi));
  createExpressEndpoints(workerContract, router, app, {
    responseValidation: deps.validateResponses ?? false,
    requestValidationErrorHandler: (error, _req, res) => handleRequestValidationError(error, res),
  });
  app.use(routeNotFound);
  app.use(finalErrorHandler({ logger, server: 'worker', bodyLimit }));
  return app;
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
