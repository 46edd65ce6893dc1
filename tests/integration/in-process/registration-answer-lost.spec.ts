/**
 * A worker's registration whose answer was lost (README Security, "A registration whose answer
 * was lost"), where the orchestrator already calls the worker with the credential that answer
 * carried: a worker that had registered before (an orchestrator restarted), and a fresh worker
 * whose first registration a gateway sent twice. Real servers on 127.0.0.1, a plain-HTTP front
 * in front of the orchestrator playing the gateway.
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runPipeline, type RunningOrchestrator } from '@mpd/orchestrator';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, JOIN_TOKEN as JOIN, silent } from '../helpers/cluster.js';

const where = defineModule({ name: 'where', run: (ctx) => ({ workerId: ctx.workerId }) });
const pipeline = definePipeline({ name: 'answer-lost', modules: [where] });
const REGISTER = '/api/workers/register';

let cluster: Cluster | undefined;
let closeFront: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cluster?.close();
  await closeFront?.();
  cluster = undefined;
  closeFront = undefined;
});

type Forward = (req: IncomingMessage, body: Buffer, then: (answer: IncomingMessage) => void, fail: () => void) => void;

/** A front that forwards to `upstream()`; `route` decides what it does with each request. */
async function startFront(
  upstream: () => URL,
  route: (req: IncomingMessage, res: ServerResponse, body: Buffer, forward: Forward) => void,
): Promise<string> {
  const forward: Forward = (req, body, then, fail) => {
    const target = upstream();
    const out = httpRequest(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
      then,
    );
    out.on('error', fail);
    out.end(body);
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => route(req, res, Buffer.concat(chunks), forward));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closeFront = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const pass = (res: ServerResponse) => (answer: IncomingMessage) => {
  res.writeHead(answer.statusCode!, answer.headers);
  answer.pipe(res);
};

describe('a worker that had registered before registers again and loses the answer', () => {
  it('the execute the run sends meanwhile with the credential it has not read is no lost attempt and quarantines nothing, and the worker holds it (503, not 401) while it registers', async () => {
    cluster = new Cluster();
    const first = await cluster.startOrchestrator({ joinToken: JOIN });
    let upstream = new URL(first.url);
    /** armed: the next registration is served and its answer lost; the ones after are held until released. */
    let armed = false;
    let lost = 0;
    const held: (() => void)[] = [];
    const frontUrl = await startFront(
      () => upstream,
      (req, res, body, forward) => {
        const destroy = () => res.destroy();
        if (armed && req.url === REGISTER) {
          if (lost++ === 0) {
            forward(req, body, (answer) => answer.resume().on('end', () => req.socket.destroy()), destroy);
          } else {
            held.push(() => forward(req, body, pass(res), destroy));
          }
          return;
        }
        forward(req, body, pass(res), destroy);
      },
    );
    const worker = await cluster.startWorker({ id: 'w-again', joinToken: JOIN, orchestratorUrl: frontUrl, pipeline });
    await worker.link!.registered();
    const before = worker.link!.credential;

    // The orchestrator restarts: the worker's registration again is served, its answer lost;
    // its retry is held until the run has been answered for the execute it sends meanwhile.
    armed = true;
    const restarted: RunningOrchestrator = await cluster.startOrchestrator({ joinToken: JOIN });
    upstream = new URL(restarted.url);
    await first.close();
    await expect.poll(() => restarted.registry.credentialOf('w-again'), { timeout: 10_000 }).toBeDefined();
    const unread = restarted.registry.credentialOf('w-again')!;
    await expect.poll(() => held.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    expect(worker.link!.credential).toBe(before);

    // Called with the credential it has not read: held, then told to come back (503), never refused 401.
    const answer = await fetch(`${worker.url}/api/execution/cancel`, {
      method: 'POST',
      headers: { authorization: `Bearer ${unread}`, 'content-type': 'application/json' },
      body: JSON.stringify({ executionId: 'e-1', reason: 'test' }),
    });
    expect(answer.status).toBe(503);
    expect(((await answer.json()) as { code: string }).code).toBe('WorkerNotReady');

    const lostEvents: string[] = [];
    let starts = 0;
    const running = runPipeline({
      pipeline,
      registry: restarted.registry,
      logger: silent,
      // A lost attempt would end the run: it must not count as one.
      maxLostAttempts: 0,
      onEvent: (event) => {
        if (event.type === 'module-started') starts++;
        if (event.type === 'attempt-lost') lostEvents.push(JSON.stringify(event));
      },
    });
    // The run's first execute is refused while the retry is held: the module starts again
    // (requeued), or (the old code) its attempt is lost. Then the retry goes on.
    await expect.poll(() => starts >= 2 || lostEvents.length > 0, { timeout: 20_000 }).toBe(true);
    held.splice(0).forEach((go) => go());
    const released = performance.now();
    const result = await running;
    // Ended by the cancel, long before the module's own 60 s.
    expect(performance.now() - released).toBeLessThan(30_000);
    expect(lostEvents).toEqual([]);
    expect(result.status).toBe('Successful');
    expect(result.modules[0]).toMatchObject({ workerId: 'w-again', result: { workerId: 'w-again' } });
    expect(result.modules[0]!.attempts.at(-1)).toMatchObject({ workerId: 'w-again', outcome: 'Succeeded' });
    expect(result.modules[0]!.attempts.slice(0, -1).every((attempt) => attempt.outcome === 'Rejected')).toBe(true);
    expect(restarted.registry.credentialOf('w-again')).not.toBe(unread);
    expect(worker.link!.credential).toBe(restarted.registry.credentialOf('w-again'));
  }, 60_000);
});

describe('a fresh worker whose first registration a gateway sent twice', () => {
  it("registers by its next attempt (its retry) after the duplicate's 409, not after the holder's whole lease (the 409's Retry-After)", async () => {
    cluster = new Cluster();
    // The cluster's heartbeat timeout (60 s): the old worker waited the holder's lease, 61 s.
    const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN });
    let duplicated = false;
    const frontUrl = await startFront(
      () => new URL(orchestrator.url),
      (req, res, body, forward) => {
        const destroy = () => res.destroy();
        if (req.url !== REGISTER || duplicated) {
          forward(req, body, pass(res), destroy);
          return;
        }
        // Served, the answer lost on the way back; the gateway sends it again and answers with that.
        duplicated = true;
        forward(
          req,
          body,
          (answer) => answer.resume().on('end', () => forward(req, body, pass(res), destroy)),
          destroy,
        );
      },
    );
    const worker = await cluster.startWorker({ id: 'w-dup', joinToken: JOIN, orchestratorUrl: frontUrl, pipeline });
    await expect.poll(() => worker.link!.state.status, { timeout: 30_000 }).toBe('registered');
    expect(duplicated).toBe(true);
    expect(worker.link!.credential).toBe(orchestrator.registry.credentialOf('w-dup'));
    const result = await runPipeline({ pipeline, registry: orchestrator.registry, logger: silent });
    expect(result.status).toBe('Successful');
  }, 60_000);
});

describe('a cancel sent with a credential revoked meanwhile', () => {
  it("is refused 401, then sent again with the worker's credential as the registry has it now, and acknowledged", async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN });
    // The worker's first registration is served and its answer lost (a credential issued that it
    // never reads); its retry, which revokes that credential, is held until the test lets it go.
    let registrations = 0;
    const held: (() => void)[] = [];
    const frontUrl = await startFront(
      () => new URL(orchestrator.url),
      (req, res, body, forward) => {
        const destroy = () => res.destroy();
        if (req.url === REGISTER && ++registrations <= 2) {
          if (registrations === 1) {
            forward(req, body, (answer) => answer.resume().on('end', () => req.socket.destroy()), destroy);
          } else {
            held.push(() => forward(req, body, pass(res), destroy));
          }
          return;
        }
        forward(req, body, pass(res), destroy);
      },
    );
    // A module that runs until cancelled, 60 s at most: the run lasts until the cancel gets
    // through (5 s ran out under load before the cancel's retry, and the run ended uncancelled).
    const waits = defineModule({
      name: 'waits',
      run: (ctx) =>
        new Promise((resolve) => {
          const timer = setTimeout(() => resolve('not cancelled'), 60_000);
          ctx.signal.addEventListener('abort', () => {
            clearTimeout(timer);
            resolve('cancelled');
          });
        }),
    });
    const cancelled = definePipeline({ name: 'revoked-cancel', modules: [waits] });
    await cluster.startWorker({ id: 'w-revoked', joinToken: JOIN, orchestratorUrl: frontUrl, pipeline: cancelled });
    await expect.poll(() => held.length, { timeout: 10_000 }).toBe(1);
    const unread = orchestrator.registry.credentialOf('w-revoked');
    expect(unread).toBeDefined();

    // The run's cancel calls, from its own log.
    const cancels: { msg: string; status?: number }[] = [];
    const logger = pino(
      { level: 'debug' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          const line = JSON.parse(chunk.toString()) as { msg: string; status?: number };
          if (line.msg.startsWith('cancel')) cancels.push({ msg: line.msg, status: line.status });
          done();
        },
      }),
    );
    const controller = new AbortController();
    const running = runPipeline({
      pipeline: cancelled,
      registry: orchestrator.registry,
      logger,
      signal: controller.signal,
      // Cancelled as its module is dispatched: the cancel goes out with the credential issued
      // by the registration whose answer was lost, before the retry revokes it.
      onEvent: (event) => {
        if (event.type === 'module-started') controller.abort();
      },
    });
    await expect.poll(() => orchestrator.registry.credentialOf('w-revoked')).toBe(unread);
    held.splice(0).forEach((go) => go());
    const released = performance.now();
    const result = await running;
    // Ended by the cancel, long before the module's own 60 s.
    expect(performance.now() - released).toBeLessThan(30_000);
    expect(orchestrator.registry.credentialOf('w-revoked')).not.toBe(unread);
    expect(cancels[0]).toEqual({ msg: 'cancel refused; retrying', status: 401 });
    // The cancel got through, with the credential the registry holds now: by a cancel call sent
    // again (200: it cancelled the module; 404: it came before the execute sent again), or by a
    // heartbeat answer's cancel list (every 0.2 s here), which ends the attempt, and the cancel
    // calls with it, first on a loaded machine. Never by the module running out its 60 s.
    expect(result.modules[0]).toMatchObject({ status: 'PipelineTerminated' });
    for (const acknowledged of cancels.filter((cancel) => cancel.msg === 'cancel acknowledged'))
      expect([200, 404]).toContain(acknowledged.status);
  }, 90_000);
});
