import { type AddressInfo, createServer, type Server, type Socket, connect } from 'node:net';

/** What the proxy does to a connection's traffic. */
export type Fault =
  /** Forwards everything, both ways. */
  | { kind: 'none' }
  /**
   * Resets the connection (a TCP RST to the client; the target's side closed) `afterMs` after the
   * fault took hold on it, or once `afterBytes` bytes (both ways together) were forwarded,
   * whichever comes first. With neither, at once.
   */
  | { kind: 'reset'; afterMs?: number; afterBytes?: number }
  /**
   * Forwards nothing either way and drops what arrives, keeping the connection open (neither
   * side learns anything, not even that the other closed): a peer cut off by a network that
   * drops its packets. A black-holed connection stays so for good, even after
   * {@link FaultProxy.heal}: what it carried is gone, as through a middlebox that lost its
   * state; new connections accepted meanwhile never reach the target.
   */
  | { kind: 'black-hole' }
  /** Forwards each chunk `ms` late. */
  | { kind: 'delay'; ms: number }
  /**
   * Forwards the client's bytes to the target but holds the target's answer until the fault is
   * lifted ({@link FaultProxy.heal}, or another fault), then forwards it whole, in order: a
   * server that acted on a request whose answer the client reads only later (the client
   * frozen, or a stalled network), in an order the test decides, without a race against a timer.
   */
  | { kind: 'hold-answers' }
  /**
   * Forwards the client's bytes to the target, and resets the connection (a TCP RST to the
   * client) as soon as the target's answer begins, forwarding none of it: a request the server
   * served whose answer never came back (a reset, a gateway's failure on the way back).
   */
  | { kind: 'lose-answer' }
  /**
   * Holds the client's bytes (its requests) until the fault is lifted ({@link FaultProxy.heal},
   * or another fault), then forwards them whole, in order: a request slow on its way to the
   * server (a stalled network, a proxy's queue), arriving when the test decides. If the target's
   * connection closed meanwhile (the server restarted), they go on a new connection to the
   * current target ({@link FaultProxy.setTarget}).
   */
  | { kind: 'hold-requests' }
  /**
   * An idle-timeout gateway (nginx's `proxy_read_timeout`, a load balancer's idle timeout):
   * forwards both ways, but when the target has sent nothing for `afterMs` since the client's
   * last bytes, answers the client `status` itself (an HTML page, `Connection: close`) and
   * closes the target's connection, as such a gateway does while the server still works on the
   * request.
   */
  | { kind: 'gateway-timeout'; afterMs: number; status?: 502 | 504 };

/** Where a {@link FaultProxy} forwards to. */
export interface FaultTarget {
  port: number;
  /** @default '127.0.0.1' */
  host?: string;
}

/** A TCP proxy on 127.0.0.1 that forwards to a target and injects faults on demand. */
export interface FaultProxy {
  /** `http://127.0.0.1:PORT`: give it as the endpoint of the server behind the proxy. */
  readonly url: string;
  readonly port: number;
  /** Where to forward. Connections accepted before a target is set wait for it. */
  setTarget(target: FaultTarget): void;
  /** From now on, `fault` applies to every open connection and every new one. */
  fault(fault: Fault): void;
  /**
   * `fault` applies to one connection only: the next one whose first chunk from the client
   * matches `match` (e.g. `/POST \/api\/execution\/execute/`), or the next one accepted. Rules
   * are used in the order given, each once.
   */
  faultNext(fault: Fault, match?: RegExp): void;
  /**
   * `fault` applies to the connection that carries the next chunk from a client matching `match`
   * (e.g. `/POST \/api\/workers\/register/`), from that chunk on (a reset: the chunk is not
   * forwarded), whether the connection is new or kept alive from earlier requests, unlike
   * {@link FaultProxy.faultNext}. Rules are used in the order given, each once.
   */
  faultNextRequest(fault: Fault, match: RegExp): void;
  /** No fault any more, on new connections and open ones that were not black-holed. */
  heal(): void;
  /**
   * What happened so far: connections accepted, connections reset by a fault, bytes dropped,
   * answers a `gateway-timeout` fault gave in the target's place.
   */
  readonly stats: { accepted: number; resets: number; droppedBytes: number; gatewayTimeouts: number };
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

interface Connection {
  readonly client: Socket;
  upstream: Socket | undefined;
  fault: Fault;
  /** Whether its first chunk was looked at for a {@link FaultProxy.faultNext} rule. */
  matched: boolean;
  /** Bytes forwarded on it, both ways. */
  forwarded: number;
  /** Black-holed at some point: nothing goes through it any more. */
  lost: boolean;
  timer: NodeJS.Timeout | undefined;
  /** Client data waiting for the target's connection. */
  queued: Buffer[];
  /** The target's answer held by a `hold-answers` fault, forwarded once it is lifted. */
  held: Buffer[];
  /** The client's bytes held by a `hold-requests` fault, forwarded once it is lifted. */
  heldRequests: Buffer[];
}

const NONE: Fault = { kind: 'none' };

/**
 * Starts a TCP proxy on 127.0.0.1 (a free port) for fault tests: put it between two processes
 * (a worker's `--endpoint` pointing at it, say), then reset, black-hole, delay and heal their
 * connections from the test, all of them from now on ({@link FaultProxy.fault}) or one
 * ({@link FaultProxy.faultNext}).
 */
export async function startFaultProxy(target?: FaultTarget): Promise<FaultProxy> {
  let current: Fault = NONE;
  let destination = target;
  const waiting: (() => void)[] = [];
  const rules: { fault: Fault; match: RegExp | undefined }[] = [];
  const requestRules: { fault: Fault; match: RegExp }[] = [];
  const connections = new Set<Connection>();
  const stats = { accepted: 0, resets: 0, droppedBytes: 0, gatewayTimeouts: 0 };

  const clear = (connection: Connection): void => {
    clearTimeout(connection.timer);
    connection.timer = undefined;
  };

  const destroy = (connection: Connection): void => {
    clear(connection);
    connections.delete(connection);
    connection.client.destroy();
    connection.upstream?.destroy();
  };

  const reset = (connection: Connection): void => {
    if (connection.client.destroyed) return;
    stats.resets++;
    clear(connection);
    connections.delete(connection);
    connection.client.resetAndDestroy();
    connection.upstream?.destroy();
  };

  /** A `gateway-timeout` fault's answer in the target's place: `status`, then the connection closes, the target's first. */
  const gatewayTimeout = (connection: Connection, status: 502 | 504): void => {
    if (connection.client.destroyed) return;
    stats.gatewayTimeouts++;
    clear(connection);
    // Nothing more goes either way; the client's side closes once the page is out.
    connection.lost = true;
    connections.delete(connection);
    connection.upstream?.destroy();
    const page = `<html><body><h1>${status} ${status === 502 ? 'Bad Gateway' : 'Gateway Time-out'}</h1></body></html>`;
    connection.client.end(
      `HTTP/1.1 ${status} ${status === 502 ? 'Bad Gateway' : 'Gateway Time-out'}\r\n` +
        `Content-Type: text/html\r\nContent-Length: ${Buffer.byteLength(page)}\r\nConnection: close\r\n\r\n${page}`,
    );
  };

  /** `fault` takes hold on `connection` now. */
  const apply = (connection: Connection, fault: Fault): void => {
    clear(connection);
    const wasHolding = connection.fault.kind === 'hold-requests';
    connection.fault = fault;
    // A request held before anything went through holds no connection to the target: one
    // opens when it is let through (as a proxy's queue dispatches it to a backend then).
    if (fault.kind === 'hold-requests' && !wasHolding && connection.forwarded === 0 && connection.upstream) {
      const unused = connection.upstream;
      connection.upstream = undefined;
      unused.removeAllListeners();
      unused.on('error', () => undefined);
      unused.destroy();
    }
    if (fault.kind === 'black-hole') connection.lost = true;
    if (fault.kind !== 'hold-answers') {
      for (const chunk of connection.held.splice(0)) forward(connection, chunk, connection.client);
    }
    if (fault.kind !== 'hold-requests' && wasHolding) {
      const held = connection.heldRequests.splice(0);
      // No connection to the target (none opened while held, or it closed: the target
      // restarted): a new one to the current target takes the bytes.
      if (connection.upstream === undefined && !connection.client.destroyed && !connection.lost) {
        connection.queued.push(...held);
        if (destination) openUpstream(connection, destination);
        else waiting.push(() => openUpstream(connection, destination!));
      } else for (const chunk of held) forward(connection, chunk, connection.upstream);
    }
    if (fault.kind === 'reset') {
      if (fault.afterMs === undefined && fault.afterBytes === undefined) reset(connection);
      else if (fault.afterMs !== undefined) connection.timer = setTimeout(() => reset(connection), fault.afterMs);
    }
  };

  /** Sends `chunk` from one side to `to` as the connection's fault says. */
  const forward = (connection: Connection, chunk: Buffer, to: Socket | undefined): void => {
    const { fault } = connection;
    if (connection.lost || to === undefined) {
      stats.droppedBytes += chunk.length;
      return;
    }
    if (fault.kind === 'hold-answers' && to === connection.client) {
      connection.held.push(chunk);
      return;
    }
    if (fault.kind === 'hold-requests' && to !== connection.client) {
      connection.heldRequests.push(chunk);
      return;
    }
    if (fault.kind === 'gateway-timeout') {
      clear(connection);
      if (to !== connection.client) {
        const { afterMs, status = 504 } = fault;
        connection.timer = setTimeout(() => gatewayTimeout(connection, status), afterMs);
      }
    }
    if (fault.kind === 'lose-answer' && to === connection.client) {
      stats.droppedBytes += chunk.length;
      reset(connection);
      return;
    }
    if (fault.kind === 'delay') {
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
      }, fault.ms);
      return;
    }
    if (fault.kind === 'reset' && fault.afterBytes !== undefined) {
      const left = fault.afterBytes - connection.forwarded;
      if (chunk.length >= left) {
        connection.forwarded += Math.max(0, left);
        // Reset once the last bytes are out (a reset discards what is still unsent), a moment
        // later: a reset from within the write's callback reaches the client as a plain close.
        if (left > 0)
          to.write(chunk.subarray(0, left), () => (connection.timer = setTimeout(() => reset(connection), 20)));
        else reset(connection);
        return;
      }
    }
    connection.forwarded += chunk.length;
    to.write(chunk);
  };

  const openUpstream = (connection: Connection, to: FaultTarget): void => {
    const upstream = connect({ host: to.host ?? '127.0.0.1', port: to.port });
    connection.upstream = upstream;
    upstream.on('connect', () => {
      for (const chunk of connection.queued.splice(0)) forward(connection, chunk, upstream);
    });
    upstream.on('data', (chunk: Buffer) => forward(connection, chunk, connection.client));
    upstream.on('end', () => {
      if (connection.fault.kind === 'hold-requests' && connection.heldRequests.length > 0) return; // see `closed`
      if (!connection.lost) connection.client.end();
    });
    // While a `hold-requests` fault holds what the client sent, the client knows nothing of the
    // target's side: its connection closing leaves the client's open (see `apply`).
    const closed = (): void => {
      if (connection.fault.kind === 'hold-requests' && connection.heldRequests.length > 0) {
        if (connection.upstream === upstream) connection.upstream = undefined;
        return;
      }
      if (!connection.lost) destroy(connection);
    };
    upstream.on('error', closed);
    upstream.on('close', closed);
  };

  const server: Server = createServer((client) => {
    stats.accepted++;
    const connection: Connection = {
      client,
      upstream: undefined,
      fault: NONE,
      matched: false,
      forwarded: 0,
      lost: current.kind === 'black-hole',
      timer: undefined,
      queued: [],
      held: [],
      heldRequests: [],
    };
    connections.add(connection);
    client.on('error', () => destroy(connection));
    client.on('close', () => destroy(connection));
    client.on('end', () => {
      if (!connection.lost) connection.upstream?.end();
    });
    client.on('data', (chunk: Buffer) => {
      if (!connection.matched) {
        connection.matched = true;
        const text = chunk.toString('latin1');
        const rule = rules.findIndex(({ match }) => match === undefined || match.test(text));
        if (rule >= 0) apply(connection, rules.splice(rule, 1)[0]!.fault);
      }
      if (requestRules.length > 0) {
        const text = chunk.toString('latin1');
        const rule = requestRules.findIndex(({ match }) => match.test(text));
        if (rule >= 0) apply(connection, requestRules.splice(rule, 1)[0]!.fault);
        if (connection.client.destroyed) return;
      }
      if (connection.fault.kind === 'hold-requests') connection.heldRequests.push(chunk);
      else if (connection.upstream?.connecting === false) forward(connection, chunk, connection.upstream);
      else if (!connection.lost) connection.queued.push(chunk);
      else stats.droppedBytes += chunk.length;
    });
    apply(connection, current);
    if (connection.lost || connection.fault.kind === 'hold-requests') return; // see `apply`
    if (destination) openUpstream(connection, destination);
    else waiting.push(() => openUpstream(connection, destination!));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stats,
    setTarget(next) {
      destination = next;
      for (const open of waiting.splice(0)) open();
    },
    fault(fault) {
      current = fault;
      for (const connection of [...connections]) apply(connection, fault);
    },
    faultNext(fault, match) {
      rules.push({ fault, match });
    },
    faultNextRequest(fault, match) {
      requestRules.push({ fault, match });
    },
    heal() {
      current = NONE;
      rules.length = 0;
      requestRules.length = 0;
      for (const connection of [...connections]) apply(connection, NONE);
    },
    async close() {
      for (const connection of [...connections]) destroy(connection);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
