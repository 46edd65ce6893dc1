import { request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorBodySchema, LIMITS, workerContract } from '@mpd/contract';
import { workerOpenApi } from '@mpd/contract/openapi';
import { initServer } from '@ts-rest/express';
import type { RequestHandler } from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiApp } from './api-app.js';
import { refuseUnread } from './security.js';

const TOKEN = 'api-app-token-0123456789';
const s = initServer();

/** What the route middleware saw of the body: it must never have been read yet. */
const bodiesSeenByMiddleware: unknown[] = [];
const authenticate: RequestHandler = (req, res, next) => {
  bodiesSeenByMiddleware.push(req.body);
  if (req.headers.authorization === `Bearer ${TOKEN}`) return next();
  if (req.headers.authorization === 'Bearer later') {
    // A refusal of another status, with a time to retry (as the worker's 503 before it registered).
    refuseUnread(req, res, { code: 'WorkerDraining', message: 'not yet', retryAfterSeconds: 2.5 });
    return;
  }
  refuseUnread(req, res, { code: 'Unauthorized', message: 'a bearer token is required' });
};

let server: Server;
let port: number;

beforeAll(async () => {
  const app = createApiApp({
    contract: workerContract,
    routes: s.router(workerContract, {
      execution: {
        execute: { middleware: [authenticate], handler: async () => ({ status: 404, body: notFound() }) },
        cancel: {
          middleware: [authenticate],
          handler: async ({ body }) => ({ status: 200, body: { success: true, echoed: body.executionId } as never }),
        },
      },
      health: {
        get: async () => ({
          status: 200,
          body: { status: 'healthy', currentLoad: 0, maxLoad: 1, timestamp: new Date().toISOString() },
        }),
      },
    }),
    openApi: workerOpenApi,
    server: 'test',
    logger: { error: () => undefined },
    bodyLimit: '1mb',
    validateResponses: false,
  });
  server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  port = (server.address() as AddressInfo).port;
});
afterAll(
  () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
);

function notFound() {
  return { success: false as const, errorMessage: 'no such execution' };
}

async function post(path: string, body: string, headers: Record<string, string> = {}) {
  const started = performance.now();
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, ms: performance.now() - started };
}

describe('createApiApp: route middleware before the body is read', () => {
  it("runs a route's middleware before its JSON body is parsed, then parses it for the handler", async () => {
    bodiesSeenByMiddleware.length = 0;
    const answer = await post('/api/execution/cancel', JSON.stringify({ executionId: 'e1' }), {
      authorization: `Bearer ${TOKEN}`,
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toEqual({ success: true, echoed: 'e1' });
    expect(bodiesSeenByMiddleware).toEqual([undefined]);
  });

  it('refuses without parsing: malformed JSON, a wrong content type or a body near the limit get the 401, small', async () => {
    const nearLimit = `{"executionId":"e1","reason":"${'x'.repeat(1_000_000)}"}`;
    for (const [body, type] of [
      ['{not json', 'application/json'],
      ['plain text', 'text/plain'],
      [nearLimit, 'application/json'],
    ] as const) {
      const answer = await post('/api/execution/cancel', body, { 'content-type': type });
      expect(answer.status).toBe(401);
      expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="mpd"');
      expect(errorBodySchema.parse(JSON.parse(answer.text))).toMatchObject({ code: 'Unauthorized' });
      expect(answer.text.length).toBeLessThan(200);
    }
  });

  it("passes another refusal's status through, with Retry-After in whole seconds and no WWW-Authenticate", async () => {
    const answer = await post('/api/execution/execute', '{"executionId":', { authorization: 'Bearer later' });
    expect(answer.status).toBe(503);
    expect(answer.headers.get('retry-after')).toBe('3');
    expect(answer.headers.get('www-authenticate')).toBeNull();
    expect(JSON.parse(answer.text)).toMatchObject({ code: 'WorkerDraining', errorMessage: 'not yet' });
  });

  it('after the middleware: 415, 400 and 413 as before, and a validation answer capped however many issues', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    expect((await post('/api/execution/cancel', 'plain', { ...auth, 'content-type': 'text/plain' })).status).toBe(415);
    expect((await post('/api/execution/cancel', '{not json', auth)).status).toBe(400);
    expect((await post('/api/execution/cancel', `"${'x'.repeat(1_100_000)}"`, auth)).status).toBe(413);
    // 50,000 entries, each wrong: one issue each.
    const body = JSON.stringify({
      executionId: 'e1',
      moduleTypeName: 'm',
      serializedModule: '',
      dependencyResults: Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`d${i}`, i])),
    });
    const answer = await post('/api/execution/execute', body, auth);
    expect(answer.status).toBe(400);
    const error = errorBodySchema.parse(JSON.parse(answer.text));
    expect(error.issues).toHaveLength(LIMITS.errorAnswer.maxIssues);
    expect(error.omittedIssues).toBeGreaterThanOrEqual(50_000 - LIMITS.errorAnswer.maxIssues);
    expect(error.errorMessage).toMatch(/and \d+ more issues$/);
    expect(answer.text.length).toBeLessThanOrEqual(LIMITS.errorAnswer.maxBytes);
  });

  it('answers a refused body larger than the body limit at once, then closes the connection', async () => {
    // 8 MiB announced, sent slowly: the 401 arrives before the body is half sent.
    const { status, closed } = await new Promise<{ status: number; closed: boolean }>((resolve, reject) => {
      const req = httpRequest({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/api/execution/execute',
        headers: { 'content-type': 'application/json', 'content-length': String(8 * 1024 * 1024) },
      });
      req.on('error', () => undefined); // the server closes while we still write
      req.on('response', (response) => {
        response.resume();
        response.on('end', () => {
          const socket = req.socket;
          socket?.once('close', () => resolve({ status: response.statusCode ?? 0, closed: true }));
          if (socket?.destroyed) resolve({ status: response.statusCode ?? 0, closed: true });
        });
      });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      let sent = 0;
      const write = () => {
        if (sent >= 8 * 1024 * 1024 || req.destroyed) return;
        sent += chunk.length;
        req.write(chunk, () => setTimeout(write, 1));
      };
      write();
      setTimeout(() => reject(new Error('no answer in 5 s')), 5_000).unref();
    });
    expect(status).toBe(401);
    expect(closed).toBe(true);
  });

  it('does not read the body of a request no route takes', async () => {
    const answer = await post('/api/nowhere', '{not json');
    expect(answer.status).toBe(404);
    expect(JSON.parse(answer.text)).toMatchObject({ code: 'RouteNotFound' });
  });
});
