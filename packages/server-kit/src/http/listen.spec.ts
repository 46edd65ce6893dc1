import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { rawHttpExchange } from '@mpd/test-kit';
import express from 'express';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { closeGracefully, createHttpOrHttpsServer, listen, listeningText, reachableHost } from './listen.js';
import { apiSecurityHeaders } from './security-headers.js';

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

  it("makes an express app's requests and responses with the app's own prototypes, before express sees them", async () => {
    const app = express();
    app.get('/', (req, res) => res.json({ json: typeof res.json, ip: req.ip }));
    const given: boolean[] = [];
    // What express's expressInit would set them to: already their prototypes when node made them.
    const listener = Object.assign(
      (req: IncomingMessage, res: ServerResponse) => {
        given.push(Object.getPrototypeOf(req) === app.request, Object.getPrototypeOf(res) === app.response);
        app(req, res);
      },
      { request: app.request, response: app.response },
    );
    const server = createHttpOrHttpsServer(listener);
    servers.push(server);
    const port = await listen(server, 0, '127.0.0.1');
    expect(JSON.parse(await getText(port))).toEqual({ json: 'function', ip: '127.0.0.1' });
    expect(await getText(port, false)).toContain('"json":"function"');
    expect(given).toEqual([true, true, true, true]);
  });

  it('refuses a TLS key that is not one, before listening', () => {
    expect(() => createHttpOrHttpsServer(() => undefined, { cert: 'not a certificate', key: 'not a key' })).toThrow();
  });
});

/** The security headers every answer of the API carries (`apiSecurityHeaders`), lower-case as `rawHttpExchange` gives them. */
const SECURITY_HEADERS = [
  'content-security-policy',
  'cross-origin-resource-policy',
  'referrer-policy',
  'strict-transport-security',
  'x-content-type-options',
  'x-frame-options',
];

describe('a request node refuses before the app sees it', () => {
  const cases = [
    [
      'Content-Length: abc',
      'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n',
      400,
      'headers.content-length',
      'HPE_INVALID_CONTENT_LENGTH',
    ],
    [
      'two Content-Lengths',
      'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
      400,
      'headers.content-length',
      'HPE_UNEXPECTED_CONTENT_LENGTH',
    ],
    ['a header name with a space', 'GET /x HTTP/1.1\r\nHo st: a\r\n\r\n', 400, 'headers', 'HPE_INVALID_HEADER_TOKEN'],
    ['an invalid method', 'G@T /x HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'method', 'HPE_INVALID_METHOD'],
    [
      "headers over node's limit",
      `GET /x HTTP/1.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      431,
      'headers',
      'HPE_HEADER_OVERFLOW',
    ],
  ] as const;

  it.each(cases)(
    "%s: the contract's JSON error naming the part at fault, then the connection closed",
    async (_, raw, status, field, code) => {
      let reached = 0;
      const server = createHttpOrHttpsServer(express().use((_req, res) => void (reached++, res.end('ok'))));
      servers.push(server);
      const port = await listen(server, 0, '127.0.0.1');
      const answer = await rawHttpExchange(port, raw);
      expect(answer.status).toBe(status);
      expect(answer.head).toContain('content-type: application/json');
      expect(answer.head).toContain('connection: close');
      const body = JSON.parse(answer.body) as unknown;
      expect(body).toMatchObject({
        success: false,
        errorMessage: expect.stringMatching(new RegExp(`^Malformed request: .+ \\(${code}\\)$`)),
        issues: [{ field, message: expect.any(String) }],
      });
      if (status === 400) expect(body).toMatchObject({ code: 'ValidationFailed' });
      else expect(body).not.toHaveProperty('code'); // the contract has no code for a 431
      expect(reached).toBe(0);
    },
  );

  // Round N: this answer carried only `X-Content-Type-Options` of the security headers every
  // other answer of the API carries (`apiSecurityHeaders`).
  it.each(cases)('%s: the security headers every answer of the API carries', async (_, raw) => {
    const app = express().use(apiSecurityHeaders(), (_req, res) => void res.end('ok'));
    const server = createHttpOrHttpsServer(app);
    servers.push(server);
    const port = await listen(server, 0, '127.0.0.1');
    const securityLines = (head: string) =>
      head.split('\r\n').filter((line) => SECURITY_HEADERS.includes(line.slice(0, line.indexOf(':'))));
    const refused = await rawHttpExchange(port, raw);
    const served = await rawHttpExchange(port, 'GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(served.status).toBe(200);
    expect(securityLines(served.head)).toHaveLength(SECURITY_HEADERS.length);
    expect(securityLines(refused.head)).toEqual(securityLines(served.head));
    expect(refused.head).toContain("content-security-policy: default-src 'none';frame-ancestors 'none'");
    expect(refused.head).toContain('x-frame-options: deny');
    expect(refused.head).toContain('strict-transport-security: max-age=31536000; includesubdomains');
  });

  // Pins README "Security": node's 408 for a request not received in time (`requestTimeout`,
  // checked every `connectionsCheckingInterval`, both set here before listening) gets the same
  // JSON body and security headers as the 400 and 431 above.
  it('a request not received in time: 408 with the JSON error and the security headers, then the connection closed', async () => {
    let reached = 0;
    const app = express().use(apiSecurityHeaders(), (_req, res) => void (reached++, res.end('ok')));
    const server = createHttpOrHttpsServer(app);
    servers.push(server);
    server.requestTimeout = 1_000;
    server.headersTimeout = 1_000;
    // An option of node's (not in its types as a property), read from the server when it listens.
    (server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = 100;
    const port = await listen(server, 0, '127.0.0.1');
    // Headers never finished: node gives up on the request after requestTimeout.
    const answer = await rawHttpExchange(port, 'GET /x HTTP/1.1\r\nHost: a\r\n');
    expect(answer.status).toBe(408);
    expect(answer.head).toContain('content-type: application/json');
    expect(answer.head).toContain('connection: close');
    expect(answer.head).toContain("content-security-policy: default-src 'none';frame-ancestors 'none'");
    expect(JSON.parse(answer.body)).toEqual({ success: false, errorMessage: 'The request was not received in time' });
    expect(reached).toBe(0);
  });

  // Review of round N: the header lines were built in the `clientError` listener, at the first
  // malformed request: a throw there would have crashed the process. They are built with the
  // server, so such a failure is the caller's, when it makes the server (injected here: helmet's
  // fixed configuration cannot fail on its own).
  it('builds the security header lines when the server is made, not at the first refused request', async () => {
    vi.resetModules();
    vi.doMock('./security-headers.js', async (original) => ({
      ...(await original<typeof import('./security-headers.js')>()),
      apiSecurityHeaderPairs: () => {
        throw new Error('no security headers');
      },
    }));
    try {
      const fresh = await import('./listen.js');
      expect(() => fresh.createHttpOrHttpsServer(express())).toThrow('no security headers');
    } finally {
      vi.doUnmock('./security-headers.js');
      vi.resetModules();
    }
  });

  it('a malformed body after the app answered: the answer is left as it is, the connection closed (nothing written into it)', async () => {
    const server = createHttpOrHttpsServer(express().use((_req, res) => void res.end('ok')));
    servers.push(server);
    const port = await listen(server, 0, '127.0.0.1');
    const answer = await rawHttpExchange(
      port,
      'POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    );
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('ok');
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

describe('listeningText', () => {
  const entry = (address: string, family: 'IPv4' | 'IPv6', internal = false) => ({
    address,
    family,
    internal,
    netmask: family === 'IPv4' ? '255.255.255.0' : 'ffff:ffff:ffff:ffff::',
    mac: '00:00:00:00:00:00',
    cidr: null,
    ...(family === 'IPv6' ? { scopeid: 0 } : {}),
  });
  const interfaces = {
    lo: [entry('127.0.0.1', 'IPv4', true), entry('::1', 'IPv6', true)],
    eth0: [entry('10.0.0.5', 'IPv4'), entry('fd00::5', 'IPv6'), entry('fe80::1', 'IPv6')],
    eth1: [entry('192.168.1.4', 'IPv4'), entry('169.254.3.4', 'IPv4')],
  } as unknown as Parameters<typeof listeningText>[2];

  it('0.0.0.0: the host bound, then the IPv4 addresses other machines can use (not loopback, not link-local)', () => {
    expect(listeningText('http://127.0.0.1:8080', '0.0.0.0', interfaces)).toBe(
      'http://0.0.0.0:8080 (from other machines: http://10.0.0.5:8080, http://192.168.1.4:8080)',
    );
  });

  it('::: IPv6 addresses too, in brackets, and https kept', () => {
    expect(listeningText('https://[::1]:9000', '::', interfaces)).toBe(
      'https://[::]:9000 (from other machines: https://10.0.0.5:9000, https://[fd00::5]:9000, https://192.168.1.4:9000)',
    );
  });

  it('no other address (no interfaces given): the host bound alone', () => {
    expect(listeningText('http://127.0.0.1:8080', '0.0.0.0', {})).toBe('http://0.0.0.0:8080');
  });

  it('any other host: the URL unchanged', () => {
    for (const [url, host] of [
      ['http://127.0.0.1:8080', '127.0.0.1'],
      ['http://10.0.0.5:8080', '10.0.0.5'],
      ['https://ci.example:8443', 'ci.example'],
    ] as const) {
      expect(listeningText(url, host, interfaces)).toBe(url);
    }
  });
});
