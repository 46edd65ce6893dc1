/**
 * A worker honours the orchestrator's `Retry-After` on a 429 (`RateLimited`) for its
 * registrations and heartbeats: its next attempt waits what the answer says (capped: a heartbeat
 * must still land inside its lease), not the backoff (50–200 ms here), which would only be
 * refused again; on a 503 (`TooManyWorkers`, or a gateway's own to a heartbeat) it is a hint
 * capped at the longest backoff. Real orchestrator and worker servers on 127.0.0.1; what the worker waits is
 * read from its own "retrying" warnings (`retryInMs`), so nothing waits for those seconds.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { InMemoryNodeRegistry } from '@mpd/orchestrator';
import { defineModule, definePipeline } from '@mpd/pipeline';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, HEARTBEAT_TIMEOUT_MS } from '../helpers/cluster.js';

let cluster: Cluster | undefined;
/** The gateways a test started: closed (with their connections) before its cluster, as a test's own `finally` would. */
const gateways: http.Server[] = [];
afterEach(async () => {
  for (const gateway of gateways.splice(0)) {
    gateway.closeAllConnections();
    await new Promise((resolve) => gateway.close(resolve));
  }
  await cluster?.close();
  cluster = undefined;
});

const pipeline = definePipeline({ name: 'retry-after', modules: [defineModule({ name: 'noop', run: () => null })] });

/** A worker's "… failed; retrying" warning. */
interface Retry {
  msg: string;
  retryInMs: number;
  error: string;
}

/**
 * A warn-level logger that keeps the worker's "… failed; retrying" warnings in `retries` and its
 * "fenced: …" warnings in `fences`.
 */
function retryLog(): { logger: pino.Logger; retries: Retry[]; fences: string[] } {
  const retries: Retry[] = [];
  const fences: string[] = [];
  const logger = pino(
    { level: 'warn' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        const line = JSON.parse(chunk.toString()) as Retry;
        if (line.msg.endsWith('failed; retrying')) retries.push(line);
        if (line.msg.startsWith('fenced:')) fences.push(line.msg);
        done();
      },
    }),
  );
  return { logger, retries, fences };
}

/** What a gateway answers a heartbeat with, in the orchestrator's place. */
interface GatewayAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * A gateway on 127.0.0.1 in front of the orchestrator at `orchestratorUrl`: it passes every
 * request on, but answers the third heartbeat itself with `answer` (its body read and dropped).
 * `url`: where to send the worker; `heartbeats()`: how many heartbeats it has seen. Closed after
 * the test.
 */
async function startGateway(
  orchestratorUrl: string,
  answer: GatewayAnswer,
): Promise<{ url: string; heartbeats: () => number }> {
  const target = new URL(orchestratorUrl);
  let heartbeats = 0;
  const gateway = http.createServer((req, res) => {
    if (req.url?.endsWith('/heartbeat') && ++heartbeats === 3) {
      req.resume();
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body);
      return;
    }
    const upstream = http.request(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
      (upstreamAnswer) => {
        res.writeHead(upstreamAnswer.statusCode!, upstreamAnswer.headers);
        upstreamAnswer.pipe(res);
      },
    );
    req.pipe(upstream);
  });
  gateways.push(gateway);
  await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`, heartbeats: () => heartbeats };
}

describe("a worker waits the orchestrator's Retry-After, not its backoff", () => {
  it('registration refused 429 RateLimited: the next attempt waits until the rate window resets', async () => {
    cluster = new Cluster();
    // An open cluster: registrations are counted per client address, one a minute.
    await cluster.startOrchestrator({ rateLimits: { registerPerMinute: 1 } });
    await (await cluster.startWorker({ id: 'w-first', pipeline })).link!.registered();
    const { logger, retries } = retryLog();
    const second = await cluster.startWorker({ id: 'w-second', pipeline, logger });
    await expect.poll(() => retries.length, { timeout: 10_000 }).toBeGreaterThan(0);
    expect(retries[0]).toMatchObject({ msg: 'registration failed; retrying', error: expect.stringContaining('429') });
    // The seconds left of the one-minute window (the backoff would be 50 ms).
    expect(retries[0]!.retryInMs).toBeGreaterThanOrEqual(30_000);
    expect(retries[0]!.retryInMs).toBeLessThanOrEqual(60_000);
    expect(second.link!.state).toMatchObject({ status: 'registering', lastError: expect.stringContaining('429') });
    expect(retries).toHaveLength(1);
  });

  it('registration refused 503 TooManyWorkers: the Retry-After (the next expected removal) is a hint capped at the longest backoff, and the worker registers as soon as the holder unregisters', async () => {
    cluster = new Cluster();
    const offlineRetentionMs = 600_000;
    await cluster.startOrchestrator({
      registry: new InMemoryNodeRegistry({
        heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS,
        offlineRetentionMs,
        maxWorkers: 1,
        now: cluster.clock.now,
      }),
    });
    const first = await cluster.startWorker({ id: 'w-first', pipeline });
    await first.link!.registered();
    const { logger, retries } = retryLog();
    const second = await cluster.startWorker({ id: 'w-second', pipeline, logger });
    await expect.poll(() => retries.length, { timeout: 10_000 }).toBeGreaterThan(0);
    expect(retries[0]).toMatchObject({ msg: 'registration failed; retrying', error: expect.stringContaining('503') });
    expect(retries[0]!.error).toContain('TooManyWorkers');
    // The registry would remove the first worker's entry a heartbeat timeout and the offline
    // retention (11 min) after its last heartbeat; the worker waits at most its longest backoff (200 ms).
    for (const retry of retries) expect(retry.retryInMs).toBeLessThanOrEqual(200);
    expect(second.link!.state).toMatchObject({ status: 'registering', lastError: expect.stringContaining('503') });
    // The first worker stops and unregisters: the room is free at once.
    await first.close();
    cluster.workers.splice(cluster.workers.indexOf(first), 1);
    expect(cluster.orchestrator.registry.get('w-first')).toBeUndefined();
    await expect.poll(() => second.link!.state.status, { timeout: 10_000 }).toBe('registered');
  }, 30_000);

  it('heartbeat refused 429 RateLimited: the next heartbeat waits until the rate window resets, at most the heartbeat timeout', async () => {
    cluster = new Cluster();
    // Heartbeats every 200 ms, two a minute allowed: the third is refused.
    const orchestrator = await cluster.startOrchestrator({ rateLimits: { heartbeatPerMinute: 2 } });
    const { logger, retries } = retryLog();
    const worker = await cluster.startWorker({ id: 'w-beat', pipeline, logger });
    await worker.link!.registered();
    await expect.poll(() => retries.length, { timeout: 10_000 }).toBeGreaterThan(0);
    expect(retries[0]).toMatchObject({ msg: 'heartbeat failed; retrying', error: 'heartbeat answered 429' });
    // The seconds left of the one-minute window, within the 60 s heartbeat timeout (the
    // backoff would be 50 ms, and each refused heartbeat counts against the worker).
    // Capped so that the next heartbeat, answered at its 30 s call deadline at worst, still
    // lands before the renew deadline (60 s after the last acknowledged one was sent, less the
    // fence lead: the kill grace, at most a quarter of the timeout).
    expect(retries[0]!.retryInMs).toBeGreaterThanOrEqual(10_000);
    expect(retries[0]!.retryInMs).toBeLessThanOrEqual(HEARTBEAT_TIMEOUT_MS - 30_000);
    expect(worker.link!.state).toMatchObject({ status: 'registered', consecutiveFailures: 1 });
    expect(retries).toHaveLength(1);
    expect(orchestrator.registry.get('w-beat')?.status).toBe('Available');
  });

  it('heartbeat refused 429 with a Retry-After past the lease: the next heartbeat still lands inside the lease, the worker never fences', async () => {
    cluster = new Cluster();
    // A 5 s lease; every call may take 5 s (the call deadline): no room to wait at all.
    const heartbeatTimeoutMs = 5_000;
    const orchestrator = await cluster.startOrchestrator({ heartbeatTimeoutMs });
    // A gateway in front of the orchestrator that refuses the third heartbeat for an hour.
    const gateway = await startGateway(orchestrator.url, {
      status: 429,
      headers: { 'retry-after': '3600', 'content-type': 'application/json' },
      body: JSON.stringify({ code: 'RateLimited', errorMessage: 'slow down' }),
    });
    const { logger, retries, fences } = retryLog();
    const worker = await cluster.startWorker({ id: 'w-429-lease', pipeline, orchestratorUrl: gateway.url, logger });
    await worker.link!.registered();
    await expect.poll(() => retries.length, { timeout: 10_000 }).toBeGreaterThan(0);
    expect(retries[0]).toMatchObject({ msg: 'heartbeat failed; retrying', error: 'heartbeat answered 429' });
    // The backoff (50 ms), not the hour nor the heartbeat timeout.
    expect(retries[0]!.retryInMs).toBeLessThanOrEqual(200);
    // Past the moment the lease would have ended without the next heartbeat.
    await new Promise((resolve) => setTimeout(resolve, heartbeatTimeoutMs + 1_000));
    expect(fences).toEqual([]);
    expect(worker.link!.fenced).toBe(false);
    expect(gateway.heartbeats()).toBeGreaterThan(4);
    expect(worker.link!.state).toMatchObject({ status: 'registered', consecutiveFailures: 0 });
  }, 30_000);

  it("heartbeat answered 503 by a gateway (not the contract's answer): a transient refusal whose Retry-After the next heartbeat waits, capped at the longest backoff", async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator();
    // A gateway in front of the orchestrator that answers the third heartbeat itself: 503, its own page.
    const gateway = await startGateway(orchestrator.url, {
      status: 503,
      headers: { 'retry-after': '5', 'content-type': 'text/html' },
      body: '<html><body>503 Service Temporarily Unavailable</body></html>',
    });
    const { logger, retries } = retryLog();
    // A longest backoff above the Retry-After: the wait is the gateway's 5 s, not the 50 ms backoff.
    const worker = await cluster.startWorker({
      id: 'w-503-beat',
      pipeline,
      orchestratorUrl: gateway.url,
      logger,
      maxBackoffMs: 8_000,
    });
    await worker.link!.registered();
    await expect.poll(() => retries.length, { timeout: 10_000 }).toBeGreaterThan(0);
    expect(retries[0]).toMatchObject({ msg: 'heartbeat failed; retrying', error: 'heartbeat answered 503' });
    expect(retries[0]!.retryInMs).toBe(5_000);
    expect(worker.link!.state).toMatchObject({ status: 'registered', consecutiveFailures: 1 });
  });

  it('heartbeat answered 503 by a gateway with a Retry-After past the longest backoff: the longest backoff', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator();
    const gateway = await startGateway(orchestrator.url, {
      status: 503,
      headers: { 'retry-after': '3600', 'content-type': 'text/plain' },
      body: 'no healthy upstream',
    });
    const { logger, retries } = retryLog();
    const worker = await cluster.startWorker({
      id: 'w-503-cap',
      pipeline,
      orchestratorUrl: gateway.url,
      logger,
      maxBackoffMs: 2_000,
    });
    await worker.link!.registered();
    await expect.poll(() => retries.length, { timeout: 10_000 }).toBeGreaterThan(0);
    expect(retries[0]).toMatchObject({ msg: 'heartbeat failed; retrying', error: 'heartbeat answered 503' });
    expect(retries[0]!.retryInMs).toBe(2_000);
  });
});
