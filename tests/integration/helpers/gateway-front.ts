/**
 * A plain HTTP front in front of a worker, playing the gateway (a load balancer, an ingress) that
 * drops, refuses or answers calls for it: every request is forwarded to `target()` and its answer
 * passed back, but execute calls go to `route` (numbered from 1), which may `forward` them.
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const EXECUTE = '/api/execution/execute';

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

/**
 * Starts the front on 127.0.0.1 (port 0); its close goes to `cleanups`. `hangCancels`: cancel
 * calls are never answered. Answers the front's URL.
 */
export async function startGatewayFront(
  cleanups: Array<() => Promise<unknown>>,
  target: () => string,
  route: ExecuteRoute,
  { hangCancels = false }: { hangCancels?: boolean } = {},
): Promise<string> {
  let executes = 0;
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
      if (hangCancels && req.url === '/api/execution/cancel') return; // never answered
      if (req.method === 'POST' && req.url === EXECUTE) route(++executes, req, res, forward);
      else forward();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
