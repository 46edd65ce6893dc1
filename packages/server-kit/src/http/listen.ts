/** Listening and closing, over HTTP or HTTPS, the same way for both servers. */
import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { longTimeout } from '@mpd/contract/timers';

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
 * a client certificate signed by it.
 * @throws Node's error when the certificate, key or CA cannot be used (callers name the setting).
 */
export function createHttpOrHttpsServer(app: RequestListener, tls?: ServerTls): Server | HttpsServer {
  if (!tls) return createServer(app);
  return createHttpsServer(
    {
      cert: tls.cert,
      key: tls.key,
      ...(tls.clientCa !== undefined ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
    },
    app,
  );
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
  if (host === '' || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '[::1]';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
