import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { type FaultProxy, startFaultProxy } from '../src/index.js';

const servers: Server[] = [];
const proxies: FaultProxy[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
  for (const server of servers.splice(0)) server.close();
});

/** An echo server on 127.0.0.1, counting the connections it got, and keeping what it got. */
async function echoServer(): Promise<{ port: number; connections: () => number; got: () => string }> {
  let connections = 0;
  let got = '';
  const server = createServer((socket) => {
    connections++;
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => (got += chunk.toString()));
    socket.pipe(socket);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, connections: () => connections, got: () => got };
}

async function proxyTo(port?: number): Promise<FaultProxy> {
  const proxy = await startFaultProxy(port === undefined ? undefined : { port });
  proxies.push(proxy);
  return proxy;
}

/** A client connection to `port` that collects what it receives and how it ended. */
async function client(port: number): Promise<{
  socket: Socket;
  received: () => string;
  ended: Promise<string>;
}> {
  const socket = connect({ host: '127.0.0.1', port });
  sockets.push(socket);
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
  const ended = new Promise<string>((resolve) => {
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    socket.on('close', () => resolve('closed'));
  });
  await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
  return { socket, received: () => received, ended };
}

describe('startFaultProxy', () => {
  it('forwards both ways to its target, on 127.0.0.1', async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    expect(proxy.url).toBe(`http://127.0.0.1:${proxy.port}`);
    const c = await client(proxy.port);
    c.socket.write('hello');
    await expect.poll(c.received).toBe('hello');
    expect(proxy.stats).toMatchObject({ accepted: 1, resets: 0 });
  });

  it('holds connections accepted before a target is set, then forwards them', async () => {
    const echo = await echoServer();
    const proxy = await proxyTo();
    const c = await client(proxy.port);
    c.socket.write('early');
    await sleep(200);
    expect(c.received()).toBe('');
    proxy.setTarget({ port: echo.port });
    await expect.poll(c.received).toBe('early');
  });

  it('resets connections after a time, from now on: the client gets ECONNRESET', async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    const c = await client(proxy.port);
    c.socket.write('before');
    await expect.poll(c.received).toBe('before');
    const started = Date.now();
    proxy.fault({ kind: 'reset', afterMs: 300 });
    expect(await c.ended).toBe('ECONNRESET');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(proxy.stats.resets).toBe(1);
  });

  it('resets a connection once a number of bytes went through it', async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    proxy.fault({ kind: 'reset', afterBytes: 15 });
    const c = await client(proxy.port);
    c.socket.write('0123456789'); // 10 bytes there, then 5 of the 10 echoed back
    expect(await c.ended).toBe('ECONNRESET');
    expect(c.received()).toBe('01234');
  });

  it('faultNext: only the next connection whose first chunk matches gets the fault', async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    proxy.faultNext({ kind: 'reset' }, /^POST \/execute/);
    const other = await client(proxy.port);
    other.socket.write('GET /health');
    await expect.poll(other.received).toBe('GET /health');
    const target = await client(proxy.port);
    target.socket.write('POST /execute');
    expect(await target.ended).toBe('ECONNRESET');
    const again = await client(proxy.port);
    again.socket.write('POST /execute'); // the rule was used once
    await expect.poll(again.received).toBe('POST /execute');
  });

  it('faultNextRequest: the connection that carries the next matching chunk gets the fault, kept alive or new', async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    const kept = await client(proxy.port);
    kept.socket.write('GET /health');
    await expect.poll(kept.received).toBe('GET /health');
    proxy.faultNextRequest({ kind: 'reset' }, /^POST \/register/);
    kept.socket.write('POST /register'); // the second request on the connection: reset, not forwarded
    expect(await kept.ended).toBe('ECONNRESET');
    expect(echo.got()).toBe('GET /health');
    const again = await client(proxy.port);
    again.socket.write('POST /register'); // the rule was used once
    await expect.poll(again.received).toBe('POST /register');
  });

  it('holds the answers (the requests go through) until healed, then forwards them in order', async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    proxy.faultNext({ kind: 'hold-answers' });
    const c = await client(proxy.port);
    c.socket.write('one,');
    await expect.poll(echo.got).toBe('one,');
    c.socket.write('two');
    await expect.poll(echo.got).toBe('one,two');
    await sleep(100);
    expect(c.received()).toBe('');
    proxy.heal();
    await expect.poll(c.received).toBe('one,two');
  });

  it('black-holes open and new connections for good (they stay open, nothing gets through); heal lets new ones through', async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    const open = await client(proxy.port);
    proxy.fault({ kind: 'black-hole' });
    open.socket.write('dropped');
    const during = await client(proxy.port);
    during.socket.write('dropped too');
    await sleep(300);
    expect(open.received()).toBe('');
    expect(during.received()).toBe('');
    expect(echo.connections()).toBe(1); // the one opened before: the new one never reached the target
    expect(open.socket.destroyed || during.socket.destroyed).toBe(false);

    proxy.heal();
    const after = await client(proxy.port);
    after.socket.write('through');
    await expect.poll(after.received).toBe('through');
    // What the black-holed connections carried is gone, and so are they: nothing goes through any more.
    open.socket.write('lost');
    during.socket.write('lost');
    await sleep(200);
    expect(open.received()).toBe('');
    expect(during.received()).toBe('');
    expect(proxy.stats.droppedBytes).toBe('dropped'.length + 'dropped too'.length + 2 * 'lost'.length);
  });

  it('delays every chunk', async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    proxy.fault({ kind: 'delay', ms: 200 });
    const c = await client(proxy.port);
    const started = Date.now();
    c.socket.write('slow');
    await expect.poll(c.received, { timeout: 5_000 }).toBe('slow');
    expect(Date.now() - started).toBeGreaterThanOrEqual(390); // 200 ms there, 200 ms back
  });

  it("hold-requests: holds the client's bytes (the target gets nothing) until healed, then forwards them in order", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    proxy.fault({ kind: 'hold-requests' });
    const c = await client(proxy.port);
    c.socket.write('one,');
    c.socket.write('two');
    await sleep(200);
    expect(echo.got()).toBe('');
    proxy.heal();
    await expect.poll(echo.got).toBe('one,two');
    await expect.poll(c.received).toBe('one,two');
  });

  it('hold-requests: a held request holds no connection to the target; once healed it goes to the current target (one that restarted meanwhile)', async () => {
    // A first target that gets nothing, and goes away with its connections.
    const accepted: Socket[] = [];
    let firstGot = '';
    const first = createServer((socket) => {
      accepted.push(socket);
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => (firstGot += chunk.toString()));
    });
    await new Promise<void>((resolve) => first.listen(0, '127.0.0.1', resolve));
    const proxy = await proxyTo((first.address() as AddressInfo).port);
    proxy.fault({ kind: 'hold-requests' });
    const c = await client(proxy.port);
    c.socket.write('held');
    await sleep(200);
    // No connection to the target while held: the first target can close at once.
    expect(accepted).toEqual([]);
    await new Promise<void>((resolve) => first.close(() => resolve()));
    // A second target takes its place.
    const second = await echoServer();
    proxy.setTarget({ port: second.port });
    await sleep(100);
    proxy.heal();
    await expect.poll(second.got).toBe('held');
    await expect.poll(c.received).toBe('held');
    expect(firstGot).toBe('');
  });

  it('gateway-timeout: a target silent for afterMs after a request: the client gets the status page and a close, the target a close', async () => {
    let targetClosed = false;
    const silentServer = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.on('close', () => (targetClosed = true));
      socket.resume(); // reads the request, never answers
    });
    servers.push(silentServer);
    await new Promise<void>((resolve) => silentServer.listen(0, '127.0.0.1', resolve));
    const proxy = await proxyTo((silentServer.address() as AddressInfo).port);
    proxy.fault({ kind: 'gateway-timeout', afterMs: 200 });
    const c = await client(proxy.port);
    c.socket.write('POST /api/execution/execute HTTP/1.1\r\n\r\n');
    expect(await c.ended).toBe('closed');
    expect(c.received()).toMatch(/^HTTP\/1\.1 504 Gateway Time-out\r\n[\s\S]*Connection: close\r\n\r\n<html>/);
    expect(proxy.stats.gatewayTimeouts).toBe(1);
    await expect.poll(() => targetClosed).toBe(true);
  });

  it('gateway-timeout: an answer that begins in time goes through whole', async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo.port);
    proxy.fault({ kind: 'gateway-timeout', afterMs: 2_000, status: 502 });
    const c = await client(proxy.port);
    c.socket.write('ping');
    await expect.poll(c.received).toBe('ping');
    expect(proxy.stats.gatewayTimeouts).toBe(0);
  });
});
