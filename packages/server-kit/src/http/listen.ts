/** Listening and closing, over HTTP or HTTPS, the same way for both servers. */
import {
  createServer,
  IncomingMessage,
  type RequestListener,
  type Server,
  ServerResponse,
  STATUS_CODES,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { type ErrorBody, errorBody } from '@mpd/contract';
import { longTimeout } from '@mpd/contract/timers';
import { apiSecurityHeaderPairs } from './security-headers.js';

/** What a server serves HTTPS with (PEM contents, not file paths). */
export interface ServerTls {
  /** The server's certificate (chain), PEM. */
  cert: string | Buffer;
  /** The certificate's private key, PEM. */
  key: string | Buffer;
  /**
   * The CA(s) client certificates must be signed by: set it to require mutual TLS (a client
   * without such a certificate is refused during the handshake).
   * @default no client certificate asked for
   */
  clientCa?: string | Buffer;
}

/**
 * An HTTP server for `app`, or with `tls` an HTTPS one; with `tls.clientCa`, one that requires
 * a client certificate signed by it. An express `app`'s requests and responses are made with its
 * own prototypes (see {@link expressMessages}). A request node's parser refuses before `app` sees
 * it is answered with the contract's error body ({@link answerClientError}).
 * @throws Node's error when the certificate, key or CA cannot be used (callers name the setting).
 */
export function createHttpOrHttpsServer(app: RequestListener, tls?: ServerTls): Server | HttpsServer {
  // Built here, not at the first refused request: a throw in the listener would crash the process.
  const head = securityHead();
  const messages = expressMessages(app);
  const server = tls
    ? createHttpsServer(
        {
          ...messages,
          cert: tls.cert,
          key: tls.key,
          ...(tls.clientCa !== undefined ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
        },
        app,
      )
    : createServer(messages, app);
  return server.on('clientError', (error: Error & { code?: string }, socket: Socket) =>
    answerClientError(error, socket, head),
  );
}

/**
 * The part of a request each of llhttp's refusals (`HPE_…` codes) is about, as the contract's
 * field issues name it (`headers.content-length`); the request as a whole for the others.
 */
const PARSE_ERROR_FIELDS: Readonly<Record<string, string>> = {
  HPE_INVALID_CONTENT_LENGTH: 'headers.content-length',
  HPE_UNEXPECTED_CONTENT_LENGTH: 'headers.content-length',
  HPE_INVALID_TRANSFER_ENCODING: 'headers.transfer-encoding',
  HPE_INVALID_HEADER_TOKEN: 'headers',
  HPE_HEADER_OVERFLOW: 'headers',
  HPE_INVALID_CHUNK_SIZE: 'body',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 'body',
  HPE_INVALID_METHOD: 'method',
  HPE_INVALID_URL: 'url',
  HPE_INVALID_VERSION: 'version',
};

/**
 * The answer to a request node's parser refused: the status node's own answer has (431 for
 * headers over node's limit, 413 for chunk extensions over it, 408 for a request not received in
 * time, 400 for any other malformed framing: `Content-Length: abc`, two Content-Lengths, a bad
 * chunk size), and the contract's error body naming the part at fault, e.g. `{ success: false,
 * errorMessage: 'Malformed request: Invalid character in Content-Length
 * (HPE_INVALID_CONTENT_LENGTH)', code: 'ValidationFailed', issues: [{ field:
 * 'headers.content-length', … }] }` (the 431 and 408 have no code of the contract's: none
 * has those statuses). Undefined for an error that is no refusal of a request (a reset
 * connection).
 */
export function clientErrorAnswer(error: Error & { code?: string }): { status: number; body: ErrorBody } | undefined {
  const code = error.code ?? '';
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return { status: 408, body: { success: false, errorMessage: 'The request was not received in time' } };
  }
  if (!code.startsWith('HPE_')) return undefined;
  // llhttp's reasons are fixed texts ("Parse Error: Invalid character in Content-Length"), never the request's bytes.
  const reason = error.message.replace(/^Parse Error: /, '');
  const errorMessage = `Malformed request: ${reason} (${code})`;
  const issues = [{ field: PARSE_ERROR_FIELDS[code] ?? 'request', message: reason }];
  if (code === 'HPE_HEADER_OVERFLOW') {
    const { code: _none, ...body } = errorBody('ValidationFailed', errorMessage, issues);
    return { status: 431, body };
  }
  if (code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') {
    return { status: 413, body: errorBody('PayloadTooLarge', errorMessage, issues) };
  }
  return { status: 400, body: errorBody('ValidationFailed', errorMessage, issues) };
}

/**
 * Node's `clientError` handler, answering as node would (its status, on a socket with no answer
 * of its own under way, then the connection closed) but with {@link clientErrorAnswer}'s JSON
 * body: node's own answer is a bare status line a client cannot tell from a proxy's. An answer
 * already being written (a request the app answered before its body's framing failed) is left
 * as it is, as node leaves it: the connection is only closed. The answer carries the security
 * headers every other answer of the API carries (`Content-Security-Policy`, `X-Frame-Options`,
 * `Strict-Transport-Security`, …: {@link apiSecurityHeaderPairs}), as `securityLines`, the header
 * lines {@link securityHead} made when the server was made.
 */
function answerClientError(error: Error & { code?: string }, socket: Socket, securityLines: string): void {
  const answer = clientErrorAnswer(error);
  // The response in flight on this connection, as node's own handler reads it (`_httpMessage`).
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (answer === undefined || !socket.writable || inFlight?.headersSent === true) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(answer.body);
  // Closed once written, as node closes after its own answer.
  socket.end(
    `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? ''}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Cache-Control: no-store\r\n' +
      securityLines +
      'Connection: close\r\n\r\n' +
      body,
    () => socket.destroy(),
  );
}

/**
 * The API's security headers ({@link apiSecurityHeaderPairs}) as header lines, made once, by the
 * first {@link createHttpOrHttpsServer}.
 */
let madeLines: string | undefined;
function securityHead(): string {
  return (madeLines ??= apiSecurityHeaderPairs()
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join(''));
}

/**
 * Node's server options (`IncomingMessage`, `ServerResponse`) that make each request and response
 * of an express `app` with the prototypes express gives them (`app.request`, `app.response`):
 * express's `expressInit` sets them on every request and response it is given, and a
 * prototype changed on a live object costs V8 a new hidden class for it and makes every later
 * property access on it, node's own and express's, slow; one already in place is left as it is.
 * Measured on the worker's execute route (issue 14, round H, `bench/route-split.ts`): node's
 * `http` answering it cost 15–18 µs of CPU per request, 44 µs with the two prototypes set as
 * express sets them, express's whole router 56–58 µs; made with them from the start, 20 µs. Anything but an
 * express app (or a node whose classes cannot be called so): none.
 */
function expressMessages(app: RequestListener): {
  IncomingMessage?: typeof IncomingMessage;
  ServerResponse?: typeof ServerResponse;
} {
  const { request, response } = app as Partial<Record<'request' | 'response', object>>;
  if (
    request === undefined ||
    response === undefined ||
    !IncomingMessage.prototype.isPrototypeOf(request) ||
    !ServerResponse.prototype.isPrototypeOf(response) ||
    !callable(IncomingMessage) ||
    !callable(ServerResponse)
  ) {
    return {};
  }
  // Made as node's own classes were subclassed before ES classes: a function whose `prototype` is
  // express's, calling node's on the new object. (`Reflect.construct` with such a `new.target`
  // made objects V8 handles slowly: 113 µs a request against node's 18.)
  function AppRequest(this: IncomingMessage, ...args: unknown[]): void {
    (IncomingMessage as unknown as (...args: unknown[]) => void).apply(this, args);
  }
  AppRequest.prototype = request;
  function AppResponse(this: ServerResponse, ...args: unknown[]): void {
    (ServerResponse as unknown as (...args: unknown[]) => void).apply(this, args);
  }
  AppResponse.prototype = response;
  return {
    IncomingMessage: AppRequest as unknown as typeof IncomingMessage,
    ServerResponse: AppResponse as unknown as typeof ServerResponse,
  };
}

/** Whether node's `constructor` may be called on an object already made (a plain function, as in Node 20, not a `class`). */
function callable(constructor: Function): boolean {
  return !/^class\b/.test(Function.prototype.toString.call(constructor));
}

/**
 * Listens on `host:port` (0 picks a free port).
 * @returns the port listened on
 * @throws Node's error when it cannot listen (port in use, address not available, no permission)
 */
export function listen(server: Server | HttpsServer, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Stops listening, closes idle connections at once, waits for the requests in flight, and after
 * `graceMs` (when given) drops the connections still open. Resolves once the server closed.
 */
export function closeGracefully(server: Server | HttpsServer, graceMs?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const force =
      graceMs === undefined ? undefined : longTimeout(() => server.closeAllConnections(), graceMs, { unref: true });
    server.close((error) => {
      force?.clear();
      if (error) reject(error);
      else resolve();
    });
    server.closeIdleConnections();
  });
}

/** The host part of a URL that reaches a server listening on `host` from this machine. */
export function reachableHost(host: string): string {
  if (isWildcardHost(host)) return host.includes(':') ? '[::1]' : '127.0.0.1';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** Whether listening on `host` means every address of this machine (`0.0.0.0`, `::`). */
export function isWildcardHost(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::' || host === '[::]';
}

/**
 * What the CLIs print after "listening on": `url` (as {@link reachableHost} makes it) with the
 * host actually bound, e.g. `http://0.0.0.0:8080` for `--host 0.0.0.0`, and for such a
 * wildcard host the URLs at this machine's addresses that other machines may use (from
 * `interfaces`: not internal, not link-local; IPv4 only for `0.0.0.0`), e.g.
 * `http://0.0.0.0:8080 (from other machines: http://10.0.0.5:8080, http://[fd00::5]:8080)`.
 * Any other host: `url` unchanged. The first word stays a URL this machine can call: Linux
 * connects `0.0.0.0`/`[::]` to itself.
 */
export function listeningText(
  url: string,
  host: string,
  interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces(),
): string {
  if (!isWildcardHost(host)) return url;
  const { protocol, port } = new URL(url);
  const ipv6 = host.includes(':');
  const urls = Object.values(interfaces)
    .flat()
    .filter((entry) => entry !== undefined && !entry.internal)
    .filter((entry) => (entry!.family === 'IPv4' ? !entry!.address.startsWith('169.254.') : ipv6))
    .filter((entry) => !/^fe[89ab]/i.test(entry!.address))
    .map((entry) => `${protocol}//${entry!.family === 'IPv4' ? entry!.address : `[${entry!.address}]`}:${port}`);
  const bound = `${protocol}//${ipv6 ? '[::]' : '0.0.0.0'}:${port}`;
  return urls.length === 0 ? bound : `${bound} (from other machines: ${[...new Set(urls)].join(', ')})`;
}
