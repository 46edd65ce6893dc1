/**
 * `resolveHost`: the client connects only to the addresses the hook gives (the orchestrator
 * checks each one against its worker endpoint policy there), and a refusal sends nothing.
 * Real servers on 127.0.0.1; names are resolved by the hook, never by DNS.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ADDRESS_REFUSED, createWorkerClient, MpdClientError, type WorkerClient } from './index.js';

const servers: Server[] = [];
const clients: WorkerClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  for (const server of servers.splice(0)) server.closeAllConnections();
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
});

/** A worker health endpoint on 127.0.0.1 counting connections, and the headers of each request. */
async function healthServer(): Promise<{ port: number; connections: () => number; seen: IncomingHttpHeaders[] }> {
  const seen: IncomingHttpHeaders[] = [];
  let connections = 0;
  const server = createServer((req, res) => {
    seen.push(req.headers);
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({ status: 'healthy', workerId: 'w1', activeExecutions: 0, timestamp: new Date().toISOString() }),
    );
  });
  server.on('connection', () => connections++);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, connections: () => connections, seen };
}

function client(baseUrl: string, resolveHost: (hostname: string, port: number) => Promise<readonly string[]>) {
  const created = createWorkerClient({ baseUrl, resolveHost, timeoutMs: 5_000 });
  clients.push(created);
  return created;
}

async function failure(call: Promise<unknown>): Promise<MpdClientError> {
  const error = await call.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(MpdClientError);
  return error as MpdClientError;
}

describe('ClientOptions.resolveHost', () => {
  it('connects to the address it gives for the host, which stays the Host header', async () => {
    const worker = await healthServer();
    const asked: [string, number][] = [];
    const named = client(`http://worker.test:${worker.port}`, async (hostname, port) => {
      asked.push([hostname, port]);
      return ['127.0.0.1'];
    });
    expect(await named.health.get()).toMatchObject({ status: 200, body: { workerId: 'w1' } });
    expect(asked).toEqual([['worker.test', worker.port]]);
    expect(worker.seen[0]?.host).toBe(`worker.test:${worker.port}`);
  });

  it('is asked for IP addresses too (brackets removed), and for the default port', async () => {
    const asked: [string, number][] = [];
    const refuse = async (hostname: string, port: number): Promise<never> => {
      asked.push([hostname, port]);
      throw new Error('refused');
    };
    await failure(client('http://[::1]:9/', refuse).health.get());
    await failure(client('http://127.0.0.1', refuse).health.get());
    expect(asked).toEqual([
      ['::1', 9],
      ['127.0.0.1', 80],
    ]);
  });

  it('tries the next address when one refuses the connection', async () => {
    const worker = await healthServer();
    // Nothing listens on 127.0.0.2 at that port (the server is bound to 127.0.0.1 only).
    const fallback = client(`http://worker.test:${worker.port}`, async () => ['127.0.0.2', '127.0.0.1']);
    expect(await fallback.health.get()).toMatchObject({ status: 200 });
    expect(worker.connections()).toBe(1);
  });

  it('a refusal fails the call Unreachable with errno MPD_ADDRESS_REFUSED and the reason; nothing is sent', async () => {
    const worker = await healthServer();
    const refused = client(`http://127.0.0.1:${worker.port}`, async () => {
      throw new Error('127.0.0.1 is not allowed: the orchestrator said no');
    });
    const error = await failure(refused.health.get());
    expect(error).toMatchObject({ code: 'Unreachable', errno: ADDRESS_REFUSED });
    expect(error.message).toContain(`${ADDRESS_REFUSED}: 127.0.0.1 is not allowed: the orchestrator said no`);
    expect(worker.connections()).toBe(0);
    expect(worker.seen).toEqual([]);
  });

  it("a resolver's own error (ENOTFOUND) fails the call as that network error", async () => {
    const unknown = client('http://nowhere.test:9000', async (hostname) => {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
        code: 'ENOTFOUND',
        syscall: 'getaddrinfo',
      });
    });
    expect(await failure(unknown.health.get())).toMatchObject({ code: 'Unreachable', errno: 'ENOTFOUND' });
  });
});
