/**
 * Oversized bodies without a valid token (issue 11, case 1): huge JSON of the shapes that made
 * validation expensive (100,000s of empty strings, a million numbers, deep nesting, long
 * strings) or bytes that are not JSON, sent to every route that takes a token, with no token,
 * a wrong one, a right one in the wrong scheme, or another server's. Each must get a small 401
 * at once: the body is never parsed.
 */
import fc from 'fast-check';
import { routeNamed } from './routes.js';
import { ADMIN_TOKEN, JOIN_TOKEN, type Server, WORKER_IDS, WORKER_TOKEN } from './servers.js';

/** What each server's oversized bodies may reach: up to 3 times the orchestrator's 1 MiB limit, 12 MB on the worker. */
const MAX_BYTES: Record<Server, number> = { orchestrator: 3 * 1024 * 1024, worker: 12 * 1024 * 1024 };

/** Routes that take a token, with a body (the routes without one cannot be oversized). */
const GUARDED: readonly (readonly [Server, string])[] = [
  ['orchestrator', 'workers.register'],
  ['orchestrator', 'workers.heartbeat'],
  ['orchestrator', 'workers.drain'],
  ['orchestrator', 'workers.unregister'],
  ['worker', 'execution.execute'],
  ['worker', 'execution.cancel'],
];

export interface OversizedRequest {
  server: Server;
  method: string;
  path: string;
  contentType: string;
  /** The Authorization header, if any: never a token the route accepts. */
  authorization: string | undefined;
  body: Buffer;
}

type Shape = 'empty strings' | 'numbers' | 'nested' | 'long string' | 'not JSON';

/** A body of about `bytes` bytes in `shape`, built at once (fast-check shrinks the size and shape, not the bytes). */
function bodyOf(shape: Shape, bytes: number): Buffer {
  switch (shape) {
    case 'empty strings': {
      const count = Math.max(1, Math.floor(bytes / 3));
      return Buffer.from(
        `{"workerNode":{"id":"w","capabilities":{"tags":[${'"",'.repeat(count - 1)}""]}},"workerId":"w","currentLoad":0}`,
      );
    }
    case 'numbers': {
      const entries: string[] = [];
      for (let i = 0, size = 0; size < bytes; i++) {
        const entry = `"k${i}":${i}`;
        entries.push(entry);
        size += entry.length + 1;
      }
      return Buffer.from(`{"executionId":"e","dependencyResults":{${entries.join(',')}}}`);
    }
    case 'nested': {
      const depth = Math.floor(bytes / 2);
      return Buffer.from(`${'['.repeat(depth)}${']'.repeat(depth)}`);
    }
    case 'long string':
      return Buffer.from(`{"executionId":"${'x'.repeat(bytes)}"}`);
    case 'not JSON':
      return Buffer.alloc(bytes, '{');
  }
}

/** An Authorization header a guarded route of `server` does not accept. */
const badAuthorization = (server: Server): fc.Arbitrary<string | undefined> =>
  fc.constantFrom<string | undefined>(
    undefined,
    'Bearer wrong-token-0123456789abcdef',
    `Basic ${server === 'worker' ? WORKER_TOKEN : JOIN_TOKEN}`,
    `Bearer ${server === 'worker' ? JOIN_TOKEN : WORKER_TOKEN}`,
    `Bearer ${server === 'worker' ? ADMIN_TOKEN : WORKER_TOKEN}x`,
    'Bearer',
  );

export const oversizedUnauthenticated: fc.Arbitrary<OversizedRequest> = fc
  .constantFrom(...GUARDED)
  .chain(([server, name]) =>
    fc.record({
      server: fc.constant(server),
      name: fc.constant(name),
      workerId: fc.constantFrom(...WORKER_IDS),
      authorization: badAuthorization(server),
      contentType: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain'),
      shape: fc.constantFrom<Shape>('empty strings', 'numbers', 'nested', 'long string', 'not JSON'),
      bytes: fc.integer({ min: 100_000, max: MAX_BYTES[server] }),
    }),
  )
  .map(({ server, name, workerId, authorization, contentType, shape, bytes }) => {
    const route = routeNamed(server, name);
    return {
      server,
      method: route.method,
      path: route.path.replace(':workerId', workerId),
      contentType,
      authorization,
      body: bodyOf(shape, bytes),
    };
  });
