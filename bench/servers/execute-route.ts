/**
 * The route benchmark's servers (issue 14, `bench/route-cost.ts`): one process answering
 * `POST /api/execution/execute` with a canned success body the size of a no-op module's, built
 * several ways (argv[2]; `bench/route-split.ts` runs any of them; round H added those splitting
 * express from body-parser, and node's own with express's request and response prototypes):
 * - `http`: node's `http` alone (reads the body, `JSON.parse`, `JSON.stringify` the answer);
 * - `express`: express with `express.json()`, as the heartbeat bench's bare express;
 * - `ts-rest`: express, `express.json()` and ts-rest's `createExpressEndpoints` on the worker
 *   contract (zod validation of the body);
 * - `api-app`: the worker's own app plumbing, server-kit's `createApiApp` on the worker contract
 *   (security headers, the JSON-only check, the route middleware chain, ts-rest, zod, error
 *   handlers) with a bearer check in the route middleware as the worker's: all but the executor.
 *   The execute body checked as the worker's app checks it (`executeModuleRequestCheck`, round J).
 */
import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import { workerContract } from '@mpd/contract';
import { bearerToken, createApiApp, createHttpOrHttpsServer, safeEqual } from '@mpd/server-kit';
import { createExpressEndpoints, initServer } from '@ts-rest/express';
import express, { type RequestHandler } from 'express';
import { SERVED_CONTRACT } from '../../packages/worker/src/app.js';
import { processStats, serveIpc } from '../lib/ipc.js';
import { WORKER_TOKEN } from '../lib/processes.js';

const variant = process.argv[2] ?? 'http';

/** What a worker answers for a no-op module (its shape, not its times). */
function answer(executionId: string): object {
  const now = new Date().toISOString();
  return {
    executionId,
    duration: '00:00:00.0010000',
    startTime: now,
    endTime: now,
    workerId: 'bench-worker',
    success: true,
    serializedResult: '{"t":"123456789012345"}',
  };
}

const notImplemented = async () => ({ status: 404 as const, body: { errorCode: 'NotFound', errorMessage: 'no' } });

function tsRestRoutes(middleware: RequestHandler[]) {
  const s = initServer();
  return s.router(workerContract, {
    execution: {
      execute: {
        middleware,
        handler: async ({ body }) => ({ status: 200 as const, body: answer(body.executionId) as never }),
      },
      cancel: notImplemented as never,
    },
    health: { get: notImplemented as never },
  });
}

/** Answers a no-op module's success with node's own `writeHead` and `end`. */
function sendAnswer(res: ServerResponse, executionId: string): void {
  const text = JSON.stringify(answer(executionId));
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Reads a request's body to its end and parses it as JSON, as the `http` variant does. */
function readJson(req: import('node:http').IncomingMessage, then: (body: { executionId: string }) => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => then(JSON.parse(Buffer.concat(chunks).toString('utf8')) as { executionId: string }));
}

let server: ReturnType<typeof createServer>;
if (variant === 'http-body-parser') {
  // body-parser alone: node's `http` with `express.json()` called by hand.
  const parse = express.json({ limit: '1mb' });
  server = createServer((req, res) => {
    parse(req as never, res as never, () => {
      sendAnswer(res, (req as unknown as { body: { executionId: string } }).body.executionId);
    });
  });
} else if (variant === 'http-prototypes') {
  // node's `http` with what express's `expressInit` does to every request and response: each
  // given a prototype of the app's own (express's `app.request`, `app.response`), nothing else.
  const requestPrototype = Object.create(IncomingMessage.prototype) as object;
  const responsePrototype = Object.create(ServerResponse.prototype) as object;
  server = createServer((req, res) => {
    Object.setPrototypeOf(req, requestPrototype);
    Object.setPrototypeOf(res, responsePrototype);
    readJson(req, (body) => {
      sendAnswer(res, body.executionId);
    });
  });
} else if (variant === 'http-messages') {
  // The same prototypes, given by node when it makes each request and response (its
  // `IncomingMessage`/`ServerResponse` options, as server-kit's `createHttpOrHttpsServer` does for
  // an express app): the `setPrototypeOf` then finds them in place.
  const requestPrototype = Object.create(IncomingMessage.prototype) as object;
  const responsePrototype = Object.create(ServerResponse.prototype) as object;
  function AppRequest(this: unknown, ...args: unknown[]) {
    (IncomingMessage as unknown as (...a: unknown[]) => void).apply(this, args);
  }
  AppRequest.prototype = requestPrototype;
  function AppResponse(this: unknown, ...args: unknown[]) {
    (ServerResponse as unknown as (...a: unknown[]) => void).apply(this, args);
  }
  AppResponse.prototype = responsePrototype;
  const options = { IncomingMessage: AppRequest, ServerResponse: AppResponse } as unknown as Parameters<
    typeof createServer
  >[0];
  server = createServer(options, (req: IncomingMessage, res: ServerResponse) => {
    Object.setPrototypeOf(req, requestPrototype);
    Object.setPrototypeOf(res, responsePrototype);
    readJson(req, (body) => {
      sendAnswer(res, body.executionId);
    });
  });
} else if (variant === 'http') {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { executionId: string };
      sendAnswer(res, body.executionId);
    });
  });
} else {
  let app: express.Express;
  if (variant === 'express-bare') {
    // express's router alone: no body-parser, the body read as the `http` variant reads it.
    app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    app.post('/api/execution/execute', (req, res) => readJson(req, (body) => res.json(answer(body.executionId))));
  } else if (variant === 'express-bare-end') {
    // express's router alone, answering with node's own writeHead and end (not express's res.json).
    app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    app.post('/api/execution/execute', (req, res) =>
      readJson(req, (body) => {
        sendAnswer(res, body.executionId);
      }),
    );
  } else if (variant === 'express-raw') {
    // body-parser's raw parser (no charset decoding, no JSON) and JSON.parse by hand.
    app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    app.use(express.raw({ limit: '1mb', type: () => true }));
    app.post('/api/execution/execute', (req, res) => {
      const body = JSON.parse((req.body as Buffer).toString('utf8')) as { executionId: string };
      res.json(answer(body.executionId));
    });
  } else if (variant === 'express-no-query') {
    app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    app.set('query parser', false);
    app.use(express.json({ limit: '1mb' }));
    app.post('/api/execution/execute', (req, res) => {
      res.json(answer((req.body as { executionId: string }).executionId));
    });
  } else if (variant === 'express') {
    app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    app.use(express.json({ limit: '1mb' }));
    app.post('/api/execution/execute', (req, res) => {
      res.json(answer((req.body as { executionId: string }).executionId));
    });
  } else if (variant === 'ts-rest') {
    app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    app.use(express.json({ limit: '1mb' }));
    createExpressEndpoints(workerContract, tsRestRoutes([]), app, { logInitialization: false });
  } else if (variant === 'api-app') {
    const authenticate: RequestHandler = (req, res, next) => {
      if (safeEqual(bearerToken(req) ?? '', WORKER_TOKEN)) next();
      else res.status(401).json({ errorCode: 'Unauthorized', errorMessage: 'no' });
    };
    app = createApiApp({
      // As the worker's app serves the contract (its execute body through the hand check).
      contract: SERVED_CONTRACT,
      routes: tsRestRoutes([authenticate]),
      openApi: () => ({}),
      server: 'worker',
      logger: { error: () => undefined } as never,
      bodyLimit: '100mb',
      validateResponses: false,
    });
  } else {
    throw new Error(`unknown variant ${variant}`);
  }
  // As both servers make theirs (server-kit's, since round H with express's prototypes in place).
  server =
    variant === 'api-app' ? (createHttpOrHttpsServer(app) as ReturnType<typeof createServer>) : createServer(app);
}
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`${variant} execute route listening on http://127.0.0.1:${port}\n`);
});
serveIpc({ stats: () => processStats() });
process.on('SIGTERM', () => server.close(() => process.exit(0)));
