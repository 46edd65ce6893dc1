import { createServer, request } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { closeGracefully, createHttpOrHttpsServer, listen, reachableHost } from './listen.js';

const servers: ReturnType<typeof createServer>[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    server.close();
  }
});

/** GETs `/` of 127.0.0.1:`port` and resolves to the answer's text; `agent: false` closes the connection after it. */
function getText(port: number, agent?: false): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    request({ host: '127.0.0.1', port, ...(agent === false ? { agent } : {}) }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString())).on('end', () => resolve(text));
    })
      .on('error', reject)
      .end();
  });
}

describe('listen', () => {
  it('listens on a free port and answers with it', async () => {
    const server = createHttpOrHttpsServer((_req, res) => res.end('ok'));
    servers.push(server);
    const port = await listen(server, 0, '127.0.0.1');
    expect(port).toBeGreaterThan(0);
    expect(await getText(port)).toBe('ok');
  });

  it("rejects with Node's error when the port is taken", async () => {
    const first = createServer();
    servers.push(first);
    const port = await listen(first, 0, '127.0.0.1');
    const second = createServer();
    servers.push(second);
    await expect(listen(second, port, '127.0.0.1')).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });

  it('refuses a TLS key that is not one, before listening', () => {
    expect(() => createHttpOrHttpsServer(() => undefined, { cert: 'not a certificate', key: 'not a key' })).toThrow();
  });
});

describe('closeGracefully', () => {
  it('drops a request still open once the grace period is over', async () => {
    const server = createServer(() => {
      // never answers
    });
    servers.push(server);
    const port = await listen(server, 0, '127.0.0.1');
    const failed = new Promise<unknown>((resolve) => {
      request({ host: '127.0.0.1', port }, () => resolve('answered'))
        .on('error', resolve)
        .end();
    });
    // The request is in flight before the close starts.
    await new Promise((resolve) => server.once('request', resolve));
    await closeGracefully(server, 50);
    expect(await failed).toMatchObject({ code: 'ECONNRESET' });
  });

  it('keeps a request open through a grace period longer than a Node timer holds (2^31 - 1 ms)', async () => {
    let answer: (() => void) | undefined;
    const server = createServer((_req, res) => (answer = () => res.end('late')));
    servers.push(server);
    const port = await listen(server, 0, '127.0.0.1');
    const body = getText(port, false);
    await new Promise((resolve) => server.once('request', resolve));
    // Only the timers the grace period uses are fake: the sockets keep their own.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const closing = closeGracefully(server, 40 * 24 * 3_600_000); // 40 days
      vi.advanceTimersByTime(60_000);
      answer!();
      expect(await body).toBe('late');
      await closing;
    } finally {
      vi.useRealTimers();
    }
  });

  it('waits for the request in flight without a grace period', async () => {
    let answer: (() => void) | undefined;
    const server = createServer((_req, res) => (answer = () => res.end('late')));
    servers.push(server);
    const port = await listen(server, 0, '127.0.0.1');
    const body = getText(port);
    await new Promise((resolve) => server.once('request', resolve));
    let closed = false;
    const closing = closeGracefully(server).then(() => (closed = true));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(closed).toBe(false);
    answer!();
    expect(await body).toBe('late');
    await closing;
  });
});

describe('reachableHost', () => {
  it.each([
    ['0.0.0.0', '127.0.0.1'],
    ['::', '[::1]'],
    ['127.0.0.1', '127.0.0.1'],
    ['orchestrator.local', 'orchestrator.local'],
    ['::1', '[::1]'],
  ])('%s -> %s', (host, expected) => {
    expect(reachableHost(host)).toBe(expected);
  });
});
