import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { openApiRoute } from './openapi-route.js';

// Round Z (Z3): the servers build their OpenAPI document with an async build that loads the
// generator on the first request; a build that fails is that request's failure, and is retried.

let server: Server | undefined;
afterEach(
  () =>
    new Promise<void>((resolve) => {
      server?.closeAllConnections();
      server?.close(() => resolve()) ?? resolve();
      server = undefined;
    }),
);

/** An app serving `openApiRoute(build)` at `/doc`, its errors answered 500 with their message. */
async function serve(build: () => object | Promise<object>): Promise<string> {
  const app = express();
  app.get('/doc', openApiRoute(build));
  app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).json({ error: error.message });
  });
  server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/doc`;
}

describe('openApiRoute', () => {
  it('serves an async build, built once, with the address it was fetched from', async () => {
    let builds = 0;
    const url = await serve(async () => {
      builds++;
      await new Promise((resolve) => setTimeout(resolve, 10));
      return { openapi: '3.0.2' };
    });
    const [first, second] = await Promise.all([fetch(url), fetch(url)]);
    const expected = { openapi: '3.0.2', servers: [{ url: url.replace('/doc', '') }] };
    expect([first.status, await first.json()]).toEqual([200, expected]);
    expect([second.status, await second.json()]).toEqual([200, expected]);
    expect(builds).toBe(1);
  });

  it('answers a failed build through the error handler, and builds again on the next request', async () => {
    let builds = 0;
    const url = await serve(async () => {
      if (++builds === 1) throw new Error('generator missing');
      return { openapi: '3.0.2' };
    });
    const failed = await fetch(url);
    expect([failed.status, await failed.json()]).toEqual([500, { error: 'generator missing' }]);
    const retried = await fetch(url);
    expect(retried.status).toBe(200);
    expect(builds).toBe(2);
  });
});
