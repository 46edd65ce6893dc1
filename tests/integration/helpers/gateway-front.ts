/**
 * A plain HTTP front in front of a worker, playing the gateway (a load balancer, an ingress) that
 * drops, refuses or answers calls for it: every request is forwarded to `target()` and its answer
 * passed back, but execute calls go to `route` (numbered from 1), which may `forward` them.
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const EXECUTE = '/api/execution/execute';
const CANCEL = '/api/execution/cancel';

/**
 * What the front does with one execute call (numbered from 1). `forward(then)` sends it on;
 * `then` gets the worker's answer (by default it is passed back to the caller, unless the
 * caller's response is gone).
 */
export type ExecuteRoute = (
  call: number,
  req: IncomingMessage,
  res: ServerResponse,
  forward: (then?: (answer: IncomingMessage) => void) => void,
) => void;

/** How the front treats cancel calls. */
export interface GatewayFrontOptions {
  /** Cancel calls are never answered. @default false */
  hangCancels?: boolean;
  /**
   * Each cancel call is passed on only this long (ms) after it arrived (a slow or congested
   * gateway): the caller's heartbeats may come before its answer. @default 0 (passed on at once)
   */
  cancelDelayMs?: number;
}

/**
 * Starts the front on 127.0.0.1 (port 0); its close goes to `cleanups` (pending delayed cancels
 * are dropped). Answers the front's URL.
 */
export async function startGatewayFront(
  cleanups: Array<() => Promise<unknown>>,
  target: () => string,
  route: ExecuteRoute,
  { hangCancels = false, cancelDelayMs = 0 }: GatewayFrontOptions = {},
): Promise<string> {
  let executes = 0;
  const delayed = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const pass = (answer: IncomingMessage): void => {
        if (res.destroyed) return void answer.resume();
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      };
      const forward = (then: (answer: IncomingMessage) => void = pass): void => {
        const to = new URL(target());
        const out = httpRequest(
          { host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers },
          then,
        );
        out.on('error', () => res.destroy());
        out.end(Buffer.concat(chunks));
      };
      if (req.url === CANCEL && hangCancels) return; // never answered
      if (req.url === CANCEL && cancelDelayMs > 0) {
        const timer = setTimeout(() => {
          delayed.delete(timer);
          forward();
        }, cancelDelayMs);
        delayed.add(timer);
        return;
      }
      if (req.method === 'POST' && req.url === EXECUTE) route(++executes, req, res, forward);
      else forward();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    for (const timer of delayed) clearTimeout(timer);
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
