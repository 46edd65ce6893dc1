import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorBodySchema } from '@mpd/contract';
import { finalErrorHandler, routeNotFound } from './error-handling.js';

const logged: unknown[] = [];
let server: Server;
let url: string;

beforeAll(async () => {
  const app = express();
  app.use(express.json({ limit: '1kb' }));
  app.post('/items/:id', (req, res) => {
    res.json({ id: req.params.id, body: req.body as unknown });
  });
  app.get('/boom', () => {
    throw new Error('secret detail');
  });
  app.use(routeNotFound);
  app.use(finalErrorHandler({ logger: { error: (fields) => logged.push(fields) }, server: 'test', bodyLimit: '1kb' }));
  server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function post(path: string, body: string | Uint8Array, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  return { status: response.status, body: errorBodySchema.safeParse(await response.json()) };
}

describe('finalErrorHandler', () => {
  it('answers the body-parser errors it always knew: malformed JSON 400, too large 413', async () => {
    expect(await post('/items/a', '{')).toMatchObject({ status: 400, body: { data: { code: 'MalformedJson' } } });
    const big = JSON.stringify({ pad: 'x'.repeat(2_000) });
    expect(await post('/items/a', big)).toMatchObject({ status: 413, body: { data: { code: 'PayloadTooLarge' } } });
  });

  // Found by the HTTP fuzz test (tests/integration/fuzz/): these client errors answered 500 InternalError.
  it('answers 400, not 500, for a path whose percent-encoding does not decode', async () => {
    for (const id of ['%', '%E0%A4%A', '%zz']) {
      const answer = await post(`/items/${id}`, '{}');
      expect(answer).toMatchObject({ status: 400, body: { success: true, data: { code: 'ValidationFailed' } } });
      expect(answer.body.data?.errorMessage).toContain('percent-encoding');
    }
  });

  it('answers 400, not 500, for a body that does not inflate with its Content-Encoding', async () => {
    for (const encoding of ['gzip', 'deflate']) {
      const answer = await post('/items/a', 'not compressed', { 'content-encoding': encoding });
      expect(answer).toMatchObject({ status: 400, body: { success: true, data: { code: 'ValidationFailed' } } });
      expect(answer.body.data?.errorMessage).toContain('Content-Encoding');
    }
    // A body that does inflate still works.
    const ok = await fetch(`${url}/items/a`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync('{"x":1}'),
    });
    expect(await ok.json()).toEqual({ id: 'a', body: { x: 1 } });
  });

  it('answers 415 UnsupportedMediaType for an unknown Content-Encoding or charset', async () => {
    for (const headers of [
      { 'content-encoding': 'x-garbage' } as Record<string, string>,
      { 'content-type': 'application/json; charset=latin9' },
    ]) {
      expect(await post('/items/a', '{}', headers)).toMatchObject({
        status: 415,
        body: { success: true, data: { code: 'UnsupportedMediaType' } },
      });
    }
  });

  it('still answers 500 InternalError, without details, for other errors, and logs them', async () => {
    const response = await fetch(`${url}/boom`);
    expect(response.status).toBe(500);
    const body = errorBodySchema.parse(await response.json());
    expect(body).toMatchObject({ code: 'InternalError' });
    expect(body.errorMessage).not.toContain('secret detail');
    expect(logged).toContainEqual(expect.objectContaining({ path: '/boom' }));
  });
});
