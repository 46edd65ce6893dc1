import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorBodySchema } from '@mpd/contract';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../app.js';
import { InMemoryNodeRegistry } from '../registry/node-registry.js';
import { heartbeatWorkerId } from './rate-limits.js';

describe('heartbeatWorkerId (the heartbeat limiter key)', () => {
  it('is the workerId when it is a string, else empty, whatever the body', () => {
    expect(heartbeatWorkerId({ workerId: 'w1' })).toBe('w1');
    for (const body of [
      undefined,
      null,
      [],
      {},
      { workerId: 7 },
      { workerId: { toString: 1 } },
      { workerId: ['w1'] },
    ]) {
      expect(heartbeatWorkerId(body)).toBe('');
    }
  });
});

describe('heartbeat rate limiter', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    const app = createApp({ registry: new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 }) });
    server = await new Promise<Server>((resolve) => {
      const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  // Found by apps/demo/test/fuzz.spec.ts: the limiter keyed on String(body.workerId), which
  // throws for an object whose toString is not a function, so the request answered 500.
  it('answers 400 ValidationFailed, not 500, for a workerId object without a callable toString', async () => {
    for (const workerId of ['{"toString":""}', '{"toString":1,"valueOf":1}', '{"toString":{}}']) {
      const response = await fetch(`${url}/api/workers/heartbeat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `{"workerId":${workerId},"currentLoad":0}`,
      });
      expect(response.status).toBe(400);
      expect(errorBodySchema.parse(await response.json())).toMatchObject({ code: 'ValidationFailed' });
    }
  });
});
