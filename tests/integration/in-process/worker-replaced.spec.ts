/**
 * Issue 10, case 6, in the other order: a worker process replaced under its id before it read
 * its registration answer. The orchestrator may dispatch as soon as it accepts a registration, so
 * a process can be frozen (SIGSTOP, a GC pause, a VM stall) after the orchestrator accepted it
 * and before it took in the answer; a replacement with the same id and credential file registers
 * once it is Offline, and gets a new credential (the file was never written). The old process,
 * thawed, must stop as it does when frozen after reading its answer (409 `WorkerReplaced`, exit
 * 3, "another process registered as worker …"), and must not write its stale credential over
 * the replacement's. Here the freeze is a fault proxy holding the registration answer until the
 * test lets it through: real servers on 127.0.0.1, the order decided by the test, not a timer.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RunningOrchestrator } from '@mpd/orchestrator';
import { type FaultProxy, makeTestCertificates, startFaultProxy, type TestCertificates } from '@mpd/test-kit';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, JOIN_TOKEN as JOIN } from '../helpers/cluster.js';

let cluster: Cluster | undefined;
let proxy: FaultProxy | undefined;
let front: HttpsFront | undefined;
afterEach(async () => {
  await cluster?.close();
  await proxy?.close();
  await front?.close();
  cluster = proxy = front = undefined;
});

let certs: TestCertificates;
beforeAll(async () => {
  certs = await makeTestCertificates();
});
afterAll(async () => {
  await certs?.remove();
});

/** How an {@link HttpsFront} loses an answer the orchestrator gave. */
type LostAnswer =
  /** Closes the connection without a byte (a server that closed after reading the request). */
  | 'close'
  /**
   * Answers 503 with a text of its own, as Envoy (Istio's proxy) does when its upstream reset or
   * closed the connection before answering (a gateway's 502 or 504, outside the contract, rejects
   * the call as an unknown status: the same path as a closed connection).
   */
  | 'upstream-reset'
  /**
   * A gateway that retries the request (its upstream's answer lost on the way, say): the same
   * request is sent again once the orchestrator answered it, and the client gets the second
   * answer, to a duplicate of an attempt already served.
   */
  | 'duplicate';

interface HttpsFront {
  /** `https://127.0.0.1:PORT` */
  readonly url: string;
  /** Sends the requests to this orchestrator from now on. */
  target(orchestrator: RunningOrchestrator): void;
  /** The next request matching `path`: the orchestrator serves it, and its answer is lost as `how`. */
  loseNextAnswer(path: RegExp, how: LostAnswer): void;
  /** Every registration passed on so far: its `Idempotency-Key` header and its body's `sequence`. */
  readonly registrations: { key: string | undefined; sequence: unknown }[];
  close(): Promise<void>;
}

/**
 * The orchestrator's https address, requiring a client certificate signed by the test CA (mutual
 * TLS, as a TLS-terminating proxy or `--tls-client-ca` does): it passes each request to the
 * orchestrator it targets (plain http on 127.0.0.1) and its answer back, but loses answers on
 * demand after the orchestrator served the request, the order decided by the test.
 */
async function startHttpsFront(orchestrator: RunningOrchestrator): Promise<HttpsFront> {
  let upstream = new URL(orchestrator.url);
  const losses: { path: RegExp; how: LostAnswer }[] = [];
  const registrations: HttpsFront['registrations'] = [];
  const server = createHttpsServer(
    { cert: certs.serverCert, key: certs.serverKey, ca: certs.caCert, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      const loss = losses.findIndex(({ path }) => path.test(req.url ?? ''));
      const how = loss >= 0 ? losses.splice(loss, 1)[0]!.how : undefined;
      const target = { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method };
      /** The request's body, for a `duplicate`'s second sending. */
      const body: Buffer[] = [];
      req.on('data', (chunk: Buffer) => body.push(chunk));
      const forwarded = httpRequest({ ...target, headers: req.headers }, (answer) => {
        if (how === 'duplicate') {
          answer.resume();
          answer.on('end', () => {
            const again = httpRequest({ ...target, headers: req.headers }, (second) => {
              res.writeHead(second.statusCode!, second.headers);
              second.pipe(res);
            });
            again.on('error', () => res.destroy());
            again.end(Buffer.concat(body));
          });
          return;
        }
        if (how === undefined) {
          res.writeHead(answer.statusCode!, answer.headers);
          answer.pipe(res);
          return;
        }
        // Served: the whole answer came back from the orchestrator; the client gets none of it.
        answer.resume();
        answer.on('end', () => {
          if (how === 'close') req.socket.destroy();
          else
            res
              .writeHead(503, { 'content-type': 'text/plain' })
              .end('upstream connect error or disconnect/reset before headers. reset reason: connection termination');
        });
      });
      forwarded.on('error', () => res.destroy());
      if (req.url === '/api/workers/register') {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          const { sequence } = JSON.parse(Buffer.concat(chunks).toString()) as { sequence?: unknown };
          registrations.push({ key: req.headers['idempotency-key'] as string | undefined, sequence });
        });
      }
      req.pipe(forwarded);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    target: (next) => (upstream = new URL(next.url)),
    loseNextAnswer: (path, how) => losses.push({ path, how }),
    registrations,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The heartbeat timeout of the tests whose worker gets 409 `WorkerIdTaken` from its own unread
 * registration: it waits the answer's `Retry-After` (that registration's lease, up to the
 * timeout plus 1 s) in real time, so the timeout is short here.
 */
const SHORT_TIMEOUT_MS = 5_000;

/** A secured orchestrator, a fault proxy in front of it, and a path for a credential file. */
async function securedBehindProxy(options: { heartbeatTimeoutMs?: number } = {}) {
  cluster = new Cluster();
  const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN, ...options });
  proxy = await startFaultProxy({ port: Number(new URL(orchestrator.url).port) });
  const credentialFile = join(mkdtempSync(join(tmpdir(), 'mpd-replaced-')), 'credential');
  return { cluster, orchestrator, proxy, credentialFile };
}

describe('a worker replaced before it read its registration answer', () => {
  it('stops as replaced once thawed, and leaves the replacement’s credential in the shared credential file', async () => {
    const { cluster, orchestrator, proxy, credentialFile } = await securedBehindProxy();
    proxy.faultNext({ kind: 'hold-answers' }, /POST \/api\/workers\/register/);
    const settings = { id: 'w-late', joinToken: JOIN, credentialFile };
    const oldLog: { msg: string; status?: number }[] = [];
    const old = await cluster.startWorker({
      ...settings,
      orchestratorUrl: proxy.url,
      logger: pino({ level: 'warn' }, { write: (line: string) => oldLog.push(JSON.parse(line)) }),
    });
    // The orchestrator accepted the old process; its answer is held ("frozen" before reading it).
    await expect.poll(() => orchestrator.registry.incarnationOf('w-late'), { timeout: 5_000 }).toBeDefined();
    const oldIncarnation = orchestrator.registry.incarnationOf('w-late');
    expect(old.link!.state.status).toBe('registering');

    cluster.expireAllBut(); // the old process is Offline: another may take its id
    const replacement = await cluster.startWorker(settings);
    await replacement.link!.registered();
    const credential = replacement.link!.credential!;
    // Written in the background, after the registration (milliseconds).
    await expect.poll(() => readCredential(credentialFile), { timeout: 5_000 }).toBe(credential);
    expect(orchestrator.registry.incarnationOf('w-late')).not.toBe(oldIncarnation);

    proxy.heal(); // thawed: the old process reads its registration answer now
    // Within seconds (heartbeats every 0.2 s); it used to register again forever (409 WorkerIdTaken).
    await expect.poll(() => old.link!.state.status, { timeout: 10_000 }).toBe('replaced');
    const exit = await old.stopped;
    expect(exit).toMatchObject({
      reason: 'replaced',
      message: expect.stringMatching(/^another process registered as worker 'w-late' /),
    });
    // Its heartbeat got 401 first: the line says that may be a replacement, not only a restart.
    expect(oldLog.find((line) => line.status === 401)?.msg).toMatch(
      /does not take this worker's credential \(.*another process registered under this id/,
    );
    // The replacement keeps its id, its credential, and the file that holds it.
    expect(readFileSync(credentialFile, 'utf8').trim()).toBe(credential);
    expect(orchestrator.registry.credentialOf('w-late')).toBe(credential);
    expect(replacement.link!.state).toMatchObject({ status: 'registered', consecutiveFailures: 0 });
  });

  it('waits out a registration of its own whose answer it lost (409 WorkerIdTaken, its Retry-After), rather than taking it for a replacement', async () => {
    const { cluster, orchestrator, proxy, credentialFile } = await securedBehindProxy({
      heartbeatTimeoutMs: SHORT_TIMEOUT_MS,
    });
    const worker = await cluster.startWorker({
      id: 'w-own',
      joinToken: JOIN,
      credentialFile,
      orchestratorUrl: proxy.url,
    });
    await worker.link!.registered();
    const incarnation = orchestrator.registry.incarnationOf('w-own');
    const first = worker.link!.credential;
    // The orchestrator holds a registration of this very process (its incarnation) with a
    // credential the process never read, as when a restarted orchestrator served a registration
    // whose answer was lost; the process's next attempt is lost on the way (it cannot tell
    // whether it was served).
    proxy.faultNextRequest({ kind: 'reset' }, /POST \/api\/workers\/register/);
    const node = orchestrator.registry.get('w-own')!;
    orchestrator.registry.register(
      { id: node.id, endpoint: node.endpoint, capabilities: node.capabilities },
      { incarnation },
    );
    const unread = orchestrator.registry.credentialOf('w-own');
    // Heartbeat 401, registration lost, then 409 WorkerIdTaken: the same incarnation without the
    // credential is refused (the incarnation is no secret), retried after the Retry-After.
    await expect
      .poll(() => worker.link!.state.status === 'registering' && worker.link!.state.lastError, { timeout: 10_000 })
      .toContain('WorkerIdTaken');
    expect(proxy.stats.resets).toBe(1);
    expect(orchestrator.registry.credentialOf('w-own')).toBe(unread);
    cluster.clock.advance(SHORT_TIMEOUT_MS + 1); // that registration, never heartbeated, is Offline
    await expect.poll(() => worker.link!.state.status, { timeout: SHORT_TIMEOUT_MS + 10_000 }).toBe('registered');
    const credential = worker.link!.credential!;
    expect(credential).not.toBe(first);
    expect(orchestrator.registry.credentialOf('w-own')).toBe(credential);
    expect(credential).not.toBe(unread);
    expect(orchestrator.registry.incarnationOf('w-own')).toBe(incarnation);
    await expect.poll(() => readCredential(credentialFile), { timeout: 5_000 }).toBe(credential);
  }, 40_000);
});

describe('the credential file shared by the processes under one id', () => {
  it('is checked and written under its lock: another process’s check-then-write there is waited for, and its credential kept', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN });
    const credentialFile = join(mkdtempSync(join(tmpdir(), 'mpd-replaced-')), 'credential');
    // Another process under this id is between its check and its write (the lock is a
    // directory beside the file, made with mkdir, as proper-lockfile makes it).
    mkdirSync(`${credentialFile}.lock`);
    const log: { msg: string }[] = [];
    const worker = await cluster.startWorker({
      id: 'w-locked',
      joinToken: JOIN,
      credentialFile,
      logger: pino({ level: 'warn' }, { write: (line: string) => log.push(JSON.parse(line)) }),
    });
    // Registered at once (the write waits in the background, not the registration)...
    await worker.link!.registered();
    // ...and, without the lock, the worker wrote the file within milliseconds; with it, it waits.
    await sleep(1_000);
    expect(existsSync(credentialFile)).toBe(false);

    writeFileSync(credentialFile, 'the-other-process-credential\n');
    rmdirSync(`${credentialFile}.lock`);
    // It checked after the other's write: the file is the other process's, left as it is.
    await expect
      .poll(() => log.map((line) => line.msg), { timeout: 5_000 })
      .toContainEqual(expect.stringMatching(/^another process under this worker id wrote the credential file/));
    expect(readFileSync(credentialFile, 'utf8').trim()).toBe('the-other-process-credential');
    // The lock is released after that warning (its rmdir is asynchronous): waited for, not raced.
    await expect.poll(() => existsSync(`${credentialFile}.lock`), { timeout: 5_000 }).toBe(false);
    expect(readFileSync(credentialFile, 'utf8').trim()).toBe('the-other-process-credential');
  });

  it('whose lock cannot be made does not hold the registration: registered and heartbeating at once, one warning', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN });
    // A name that fits (255 bytes at most) whose lock's name ('….lock') does not: mkdir fails
    // (ENAMETOOLONG), as on a read-only or full file system, on any file system, as root too.
    const credentialFile = join(mkdtempSync(join(tmpdir(), 'mpd-replaced-')), 'c'.repeat(252));
    const log: { msg: string }[] = [];
    const worker = await cluster.startWorker({
      id: 'w-nolock',
      joinToken: JOIN,
      credentialFile,
      logger: pino({ level: 'warn' }, { write: (line: string) => log.push(JSON.parse(line)) }),
    });
    await expect.poll(() => orchestrator.registry.credentialOf('w-nolock'), { timeout: 5_000 }).toBeDefined();
    const accepted = performance.now();
    await worker.link!.registered();
    const first = orchestrator.registry.get('w-nolock')!.lastHeartbeat;
    await expect.poll(() => orchestrator.registry.get('w-nolock')!.lastHeartbeat, { timeout: 5_000 }).not.toBe(first); // heartbeats every 0.2 s
    // Registered and heartbeating within 5 s of the orchestrator's answer, where the lock's
    // retries held it about 12 s (executes answered 503 WorkerNotReady, no heartbeat, meanwhile).
    // 5 s, not 1 s: a bound under a few seconds is a race on a loaded machine; 5 s still tells
    // the two apart.
    expect(performance.now() - accepted).toBeLessThan(5_000);
    await expect
      .poll(() => log.map((line) => line.msg), { timeout: 5_000 })
      .toContain('could not write the credential file');
    expect(log.filter((line) => line.msg === 'could not write the credential file')).toHaveLength(1);
    expect(existsSync(credentialFile)).toBe(false);
  });

  it('whose lock another process holds does not hold the stop back', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN });
    const credentialFile = join(mkdtempSync(join(tmpdir(), 'mpd-replaced-')), 'credential');
    mkdirSync(`${credentialFile}.lock`); // a fresh lock: another's, or left by a killed process
    const worker = await cluster.startWorker({ id: 'w-held', joinToken: JOIN, credentialFile });
    await expect.poll(() => orchestrator.registry.credentialOf('w-held'), { timeout: 5_000 }).toBeDefined();
    const stopping = performance.now();
    await worker.close();
    // The wait for the lock ends with the stop: within 5 s where it took the lock's stale time
    // (10 s); 5 s rather than 2 s, a bound a loaded machine could miss, still tells them apart.
    expect(performance.now() - stopping).toBeLessThan(5_000);
    expect(existsSync(credentialFile)).toBe(false);
  });
});

/** What `file` holds, trimmed; undefined while it is missing. */
function readCredential(file: string): string | undefined {
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

/**
 * Worker `id` behind mutual TLS (an {@link HttpsFront}) registers with an orchestrator (heartbeat
 * timeout 120 s, the default: waiting a registration out would take 121 s); the orchestrator
 * restarts (a new one, knowing nothing, behind the same front; the first closed), and the front
 * answers the worker's next registration as `how` says. Resolves once the worker is registered
 * with a credential other than its first (`before`), within 15 s (fails the test otherwise).
 * `issued`: each credential the restarted orchestrator issued, in order; `incarnation`: the
 * worker's at its first registration.
 */
async function registeredAgainBehindFront(id: string, how: LostAnswer) {
  cluster = new Cluster();
  const first = await cluster.startOrchestrator({ joinToken: JOIN, heartbeatTimeoutMs: 120_000 });
  front = await startHttpsFront(first);
  const worker = await cluster.startWorker({
    id,
    joinToken: JOIN,
    orchestratorUrl: front.url,
    orchestratorTls: { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey },
  });
  await worker.link!.registered();
  const incarnation = first.registry.incarnationOf(id);
  const before = worker.link!.credential;

  front.loseNextAnswer(/^\/api\/workers\/register/, how);
  const restarted = await cluster.startOrchestrator({ joinToken: JOIN, heartbeatTimeoutMs: 120_000 });
  const issued: string[] = [];
  restarted.registry.onChange((event) => {
    if (event.type === 'registered') issued.push(restarted.registry.credentialOf(event.workerId)!);
  });
  front.target(restarted);
  await first.close();
  await expect
    .poll(() => worker.link!.state.status === 'registered' && worker.link!.credential !== before, {
      timeout: 15_000,
    })
    .toBe(true);
  return { worker, restarted, before, incarnation, issued };
}

describe('a worker behind mutual TLS whose registration a restarted orchestrator served, the answer lost', () => {
  // Over https a connection closed before the first byte is also how TLS 1.3 refuses a client
  // certificate; the worker used to take it for "not sent", so the live holder of its id, its own
  // unread registration, was "another process": exit 3 for good, though nobody replaced it. Then
  // (round J) it waited that registration out: 409 WorkerIdTaken until it was Offline. Now its
  // next attempt is a retry (its registration key, a greater sequence) and is taken at once.
  it.each<[string, LostAnswer]>([
    ['the connection closed before a byte', 'close'],
    ["a gateway's 503 (the orchestrator closed behind it)", 'upstream-reset'],
  ])(
    'registers again at once by its retry, the unread credential revoked: %s',
    async (_what, how) => {
      // The orchestrator restarts (a new one, knowing nothing, behind the same address); the
      // worker's registration again is served, and its answer lost on the way back. Its next
      // attempt (the old credential, unknown here; its key; the next sequence) is a retry:
      // registered within the backoff, the unread credential revoked, no 409 on the way.
      const { worker, restarted, before, incarnation, issued } = await registeredAgainBehindFront('w-mtls', how);
      const unread = issued[0]!;
      const credential = worker.link!.credential!;
      expect([before, unread]).not.toContain(credential);
      expect(restarted.registry.credentialOf('w-mtls')).toBe(credential);
      expect(restarted.registry.workerWithCredential(unread)).toBeUndefined();
      expect(restarted.registry.incarnationOf('w-mtls')).toBe(incarnation);
      expect(issued).toEqual([unread, credential]);
      expect(worker.link!.state).toMatchObject({ status: 'registered' });
      expect(JSON.stringify(worker.link!.state)).not.toContain('WorkerIdTaken');
    },
    40_000,
  );
});

describe("a worker's registration key", () => {
  it('is one random key per process on every attempt, with a greater sequence each time; never logged, written to the credential file, nor in the link state', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN });
    front = await startHttpsFront(orchestrator);
    front.loseNextAnswer(/^\/api\/workers\/register/, 'close');
    const credentialFile = join(mkdtempSync(join(tmpdir(), 'mpd-key-')), 'credential');
    const lines: string[] = [];
    const tls = { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey };
    const settings = { joinToken: JOIN, orchestratorUrl: front.url, orchestratorTls: tls, credentialFile };
    const worker = await cluster.startWorker({
      ...settings,
      id: 'w-key',
      logger: pino({ level: 'trace' }, { write: (line: string) => lines.push(line) }),
    });
    await worker.link!.registered();
    await expect.poll(() => readCredential(credentialFile), { timeout: 5_000 }).toBe(worker.link!.credential);
    // Another process (a second worker) has a key of its own.
    const other = await cluster.startWorker({ ...settings, id: 'w-key-2', credentialFile: `${credentialFile}-2` });
    await other.link!.registered();

    const [lost, retry, second] = front.registrations;
    expect(front.registrations).toHaveLength(3);
    expect([lost!.sequence, retry!.sequence, second!.sequence]).toEqual([1, 2, 1]);
    const key = /^"([A-Za-z0-9_-]{43})"$/.exec(lost!.key ?? '')?.[1];
    expect(key).toBeDefined();
    expect(retry!.key).toBe(lost!.key);
    expect(second!.key).not.toBe(lost!.key);
    expect(lines.join('')).toMatch(/registration failed; retrying[^]*registered with the orchestrator/);
    for (const line of lines) expect(line).not.toContain(key);
    expect(readFileSync(credentialFile, 'utf8')).not.toContain(key);
    expect(JSON.stringify(worker.link!.state)).not.toContain(key);
    // Nor does any line name the incarnation (others read the log).
    for (const line of lines) expect(line).not.toContain(worker.incarnation);
  });
});

describe("a gateway's retry of a served registration (its 409 answered, the served attempt's answer lost)", () => {
  it('a worker registering again checks the 409 once more (its retry is taken) rather than stopping as replaced', async () => {
    // The orchestrator restarts; the worker's registration again goes through a gateway that
    // sends it twice and answers with the second answer: 409 WorkerIdTaken, a stale duplicate.
    const { worker, restarted, issued } = await registeredAgainBehindFront('w-dup', 'duplicate');
    expect(worker.link!.state.status).toBe('registered');
    // The served attempt's credential (never read) revoked by the retry; the worker holds the second.
    expect(issued).toHaveLength(2);
    expect(worker.link!.credential).toBe(issued[1]);
    expect(restarted.registry.workerWithCredential(issued[0]!)).toBeUndefined();
    // The worker's own attempts (the gateway's duplicate is the gateway's): registered, the one
    // served twice, and the check that was taken as its retry.
    expect(front!.registrations.map(({ sequence }) => sequence)).toEqual([1, 2, 3]);
  });
});
