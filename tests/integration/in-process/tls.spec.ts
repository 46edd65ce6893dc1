/**
 * TLS and mutual TLS, attack-style: real orchestrator and worker servers on 127.0.0.1 with a
 * throwaway CA made at test time (`makeTestCertificates`, nothing committed). A client that
 * does not trust the right CA, a certificate for another name, a caller without a client
 * certificate or with one from another CA: each must be refused.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createOrchestratorClient, createWorkerClient, MpdClientError, type OrchestratorClient } from '@mpd/client';
import { runPipeline } from '@mpd/orchestrator';
import { defineModule, definePipeline } from '@mpd/pipeline';
import {
  killLeftovers,
  cliOf,
  makeTestCertificates,
  spawnProcess,
  type RunningProcess,
  type TestCertificates,
} from '@mpd/test-kit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, silent, JOIN_TOKEN as JOIN } from '../helpers/cluster.js';

let certs: TestCertificates;
/** A second, unrelated set: its client certificate is signed by a CA the servers do not trust. */
let strangers: TestCertificates;
beforeAll(async () => {
  [certs, strangers] = await Promise.all([makeTestCertificates(), makeTestCertificates()]);
});
afterAll(async () => {
  killLeftovers();
  await Promise.all([certs?.remove(), strangers?.remove()]);
});

let cluster: Cluster | undefined;
const clients: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await cluster?.close();
  cluster = undefined;
});

function orchestratorClient(options: Parameters<typeof createOrchestratorClient>[0]): OrchestratorClient {
  const client = createOrchestratorClient({ timeoutMs: 5_000, ...options });
  clients.push(client);
  return client;
}

/** What `promise` rejected with; fails the test when it resolves. */
async function refusal(promise: Promise<unknown>): Promise<MpdClientError> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`expected a refusal, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(MpdClientError);
  return outcome.error as MpdClientError;
}

const workerNode = (id: string) => ({
  id,
  endpoint: `https://127.0.0.1:9`,
  capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
});

async function tlsOrchestrator(clientCa?: string) {
  cluster = new Cluster();
  return cluster.startOrchestrator({
    tls: { cert: certs.serverCert, key: certs.serverKey, ...(clientCa ? { clientCa } : {}) },
  });
}

describe('orchestrator over TLS', () => {
  it('serves https://; a client trusting the CA gets answers (health, register)', async () => {
    const orchestrator = await tlsOrchestrator();
    expect(orchestrator.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const client = orchestratorClient({ baseUrl: orchestrator.url, tls: { ca: certs.caCert } });
    expect(await client.health.get()).toMatchObject({ status: 200, body: { status: 'healthy' } });
    const registered = await client.workers.register({ body: { workerNode: workerNode('w-tls') } });
    expect(registered.status).toBe(200);
    expect(orchestrator.registry.get('w-tls')?.status).toBe('Available');
    // The name in the certificate: localhost works as well as 127.0.0.1.
    const byName = orchestratorClient({
      baseUrl: orchestrator.url.replace('127.0.0.1', 'localhost'),
      tls: { ca: certs.caCert },
    });
    expect((await byName.health.get()).status).toBe(200);
  });

  it('a client with the default trusted roots is refused (certificate error), and so is one trusting another CA', async () => {
    const orchestrator = await tlsOrchestrator();
    const defaultTrust = await refusal(orchestratorClient({ baseUrl: orchestrator.url }).health.get());
    expect(defaultTrust.code).toBe('Unreachable');
    expect(defaultTrust.message).toMatch(/: UNABLE_TO_VERIFY_LEAF_SIGNATURE: unable to verify the first certificate$/);
    const wrongCa = await refusal(
      orchestratorClient({ baseUrl: orchestrator.url, tls: { ca: certs.otherCaCert } }).workers.register({
        body: { workerNode: workerNode('w-mitm') },
      }),
    );
    expect(wrongCa.code).toBe('Unreachable');
    expect(wrongCa.message).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    // Nothing got through: the registration never reached the registry.
    expect(orchestrator.registry.get('w-mitm')).toBeUndefined();
  });

  it('refuses a certificate signed by the trusted CA but not issued to a server at this address', async () => {
    cluster = new Cluster();
    // The client certificate is signed by the same CA, but it is no server certificate and names no address.
    const impostor = await cluster.startOrchestrator({ tls: { cert: certs.clientCert, key: certs.clientKey } });
    const error = await refusal(orchestratorClient({ baseUrl: impostor.url, tls: { ca: certs.caCert } }).health.get());
    expect(error.code).toBe('Unreachable');
    expect(error.message).toMatch(/INVALID_PURPOSE|ERR_TLS_CERT_ALTNAME_INVALID/);
  });

  it('a plain http:// client gets no answer from the TLS port', async () => {
    const orchestrator = await tlsOrchestrator();
    const plain = await refusal(
      orchestratorClient({ baseUrl: orchestrator.url.replace('https:', 'http:'), timeoutMs: 2_000 }).health.get(),
    );
    // The TLS server takes the connection, then closes it on the plain request: ConnectionLost.
    expect(['Unreachable', 'ConnectionLost', 'Timeout']).toContain(plain.code);
  });

  it('rejectUnauthorized: false skips verification only when asked to', async () => {
    const orchestrator = await tlsOrchestrator();
    const insecure = orchestratorClient({ baseUrl: orchestrator.url, tls: { rejectUnauthorized: false } });
    expect((await insecure.health.get()).status).toBe(200);
  });
});

describe('orchestrator with mutual TLS (clientCa)', () => {
  it('refuses a client without a client certificate, or with one from another CA; accepts the CA-signed one', async () => {
    const orchestrator = await tlsOrchestrator(certs.caCert);
    const anonymous = await refusal(
      orchestratorClient({ baseUrl: orchestrator.url, tls: { ca: certs.caCert } }).workers.register({
        body: { workerNode: workerNode('w-anon') },
      }),
    );
    // TLS 1.3: the server closes the session the client took as established, before a byte. The
    // client cannot tell that from a server that read the request and closed: not "Unreachable"
    // (which promises the request was not served), but the message says what it may be.
    expect(anonymous).toMatchObject({ code: 'ConnectionLost', errno: 'UND_ERR_SOCKET' });
    expect(anonymous.message).toMatch(/it may require a client certificate/);
    const stranger = await refusal(
      orchestratorClient({
        baseUrl: orchestrator.url,
        tls: { ca: certs.caCert, cert: strangers.clientCert, key: strangers.clientKey },
      }).health.get(),
    );
    expect(stranger).toMatchObject({ code: 'ConnectionLost', errno: 'UND_ERR_SOCKET' });
    expect(stranger.message).toMatch(/it may not trust the client certificate/);
    expect(orchestrator.registry.get('w-anon')).toBeUndefined();

    const member = orchestratorClient({
      baseUrl: orchestrator.url,
      tls: { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey },
    });
    expect((await member.health.get()).status).toBe(200);
    expect((await member.workers.register({ body: { workerNode: workerNode('w-member') } })).status).toBe(200);
  });
});

describe('a cluster over TLS', () => {
  const echo = defineModule({ name: 'echo', run: (ctx) => ({ worker: ctx.workerId, greeting: 'hello over TLS' }) });
  const pipeline = definePipeline({ name: 'tls', modules: [echo] });

  it('worker and orchestrator both on https: the worker registers, the pipeline runs with workerTls', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({
      joinToken: JOIN,
      tls: { cert: certs.serverCert, key: certs.serverKey },
    });
    const worker = await cluster.startWorker({
      id: 'w-https',
      pipeline,
      joinToken: JOIN,
      tls: { cert: certs.serverCert, key: certs.serverKey },
      orchestratorTls: { ca: certs.caCert },
    });
    expect(worker.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(worker.endpoint).toBe(worker.url);
    await worker.link!.registered();
    expect(orchestrator.registry.get('w-https')?.endpoint).toBe(worker.url);

    const result = await runPipeline({
      pipeline,
      registry: orchestrator.registry,
      logger: silent,
      workerTls: { ca: certs.caCert },
    });
    expect(result.success).toBe(true);
    expect(result.modules[0]).toMatchObject({ name: 'echo', status: 'Successful', workerId: 'w-https' });
    expect(JSON.stringify(result.modules[0])).toContain('hello over TLS');
  });

  it('mutual TLS both ways: each side presents the client certificate; the runner without it cannot dispatch', async () => {
    cluster = new Cluster();
    const mutual = { cert: certs.serverCert, key: certs.serverKey, clientCa: certs.caCert };
    const member = { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey };
    const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN, tls: mutual });
    const worker = await cluster.startWorker({
      id: 'w-mtls',
      pipeline,
      joinToken: JOIN,
      tls: mutual,
      orchestratorTls: member,
    });
    await worker.link!.registered();

    // Without a client certificate the worker refuses the handshake: the module is never run.
    const refused = await runPipeline({
      pipeline,
      registry: orchestrator.registry,
      logger: silent,
      workerTls: { ca: certs.caCert },
      maxLostAttempts: 0,
    });
    expect(refused.success).toBe(false);
    expect(refused.modules[0]).toMatchObject({ status: 'Failed', error: { type: 'WorkerLost' } });
    expect(refused.modules[0]!.attempts[0]!.error).toMatch(/ConnectionLost: .*it may require a client certificate/);
    const direct = createWorkerClient({ baseUrl: worker.url, tls: { ca: certs.caCert } });
    clients.push(direct);
    expect((await refusal(direct.health.get())).code).toBe('ConnectionLost');

    const result = await runPipeline({
      pipeline,
      registry: orchestrator.registry,
      logger: silent,
      workerTls: member,
    });
    expect(result.success).toBe(true);
    expect(result.modules[0]).toMatchObject({ status: 'Successful', workerId: 'w-mtls' });
  });

  it('a worker that does not trust the orchestrator’s CA never registers', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({ tls: { cert: certs.serverCert, key: certs.serverKey } });
    const worker = await cluster.startWorker({ id: 'w-wrong-ca', orchestratorTls: { ca: certs.otherCaCert } });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(worker.link!.state).not.toBe('registered');
    expect(orchestrator.registry.get('w-wrong-ca')).toBeUndefined();
  });
});

describe('the CLIs with TLS', () => {
  /** Runs `mpd-<pkg>` as a real process with the MPD_* variables (and INIT_CWD) of `env` only. */
  const cli = (pkg: 'orchestrator' | 'worker', args: string[], env: Record<string, string> = {}): RunningProcess =>
    spawnProcess({ script: cliOf(pkg), args, env, cleanEnv: true });
  // A failed test leaves its processes running (one on 0.0.0.0): stopped after each test, not at the file's end.
  afterEach(killLeftovers);

  // The processes of a test start together: each start is seconds on a loaded machine.
  it('--tls-cert without --tls-key exits 2 naming both', async () => {
    const run = cli('orchestrator', ['--port', '0', '--tls-cert', certs.files.serverCert]);
    const fromEnv = cli('orchestrator', ['--port', '0'], { MPD_TLS_KEY: certs.files.serverKey });
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain('Invalid setting --tls-cert (MPD_TLS_CERT): needs --tls-key (MPD_TLS_KEY) too');
    expect(run.stdout()).toBe('');
    expect(await fromEnv.exited).toBe(2);
    expect(fromEnv.stderr()).toContain('Invalid setting --tls-key (MPD_TLS_KEY): needs --tls-cert (MPD_TLS_CERT) too');
  });

  it('a missing certificate file exits 2 naming the flag and the variable', async () => {
    const run = cli('orchestrator', ['--port', '0', '--tls-cert', 'missing.crt', '--tls-key', certs.files.serverKey], {
      INIT_CWD: certs.dir,
    });
    const ca = cli('orchestrator', ['--port', '0'], { MPD_TLS_CA: '/nonexistent/ca.crt' });
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain(
      `Invalid setting --tls-cert (MPD_TLS_CERT): cannot read ${join(certs.dir, 'missing.crt')}: no such file`,
    );
    expect(run.stdout()).toBe('');
    expect(await ca.exited).toBe(2);
    expect(ca.stderr()).toContain('Invalid setting --tls-ca (MPD_TLS_CA): cannot read /nonexistent/ca.crt');
  });

  it('--host 0.0.0.0 without TLS or tokens warns on stderr (plain HTTP, open registration), naming no token', async () => {
    const run = cli('orchestrator', ['--port', '0', '--host', '0.0.0.0']);
    const secured = cli('orchestrator', ['--port', '0', '--host', '0.0.0.0', '--tls-cert', 'server.crt'], {
      INIT_CWD: certs.dir,
      MPD_TLS_KEY: 'server.key',
      MPD_JOIN_TOKEN: JOIN,
      MPD_ADMIN_TOKEN: 'admin-token-0123456789abcdef',
    });
    await run.listeningUrl();
    const stopped = await run.stop();
    expect(stopped.code, run.output()).toBe(0);
    const warnings = run
      .stderr()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { level: string; msg: string })
      .filter((line) => line.level === 'warn')
      .map((line) => line.msg);
    expect(warnings).toEqual([
      expect.stringMatching(/^serving plain HTTP on a non-loopback address/),
      expect.stringMatching(/anyone who can reach the orchestrator can register workers/),
      expect.stringMatching(/anyone who can reach the orchestrator can list, unregister and drain workers/),
    ]);
    expect(await run.listeningUrl()).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
    expect(run.stdout()).toMatch(
      /^mpd orchestrator listening on http:\/\/0\.0\.0\.0:\d+( \(from other machines: [^)]+\))?\n$/,
    );

    await secured.listeningUrl();
    const securedStop = await secured.stop();
    expect(securedStop.code, secured.output()).toBe(0);
    expect(secured.stderr()).not.toMatch(/"level":"warn"/);
    expect(secured.stderr()).not.toContain(JOIN);
  });

  it('orchestrator --pipeline over TLS with --tls-ca: an https worker (mutual TLS both ways) runs the pipeline', async () => {
    const pipelineFile = join(certs.dir, 'tls-cli.pipeline.ts');
    const pipelineModule = new URL('../../../packages/pipeline/src/index.ts', import.meta.url).href;
    writeFileSync(
      pipelineFile,
      [
        `import { defineModule, definePipeline } from ${JSON.stringify(pipelineModule)};`,
        `const hello = defineModule({ name: 'hello', run: () => 'hello over https' });`,
        `export default definePipeline({ name: 'tls-cli', modules: [hello] });`,
        '',
      ].join('\n'),
    );
    const tlsEnv = {
      INIT_CWD: certs.dir,
      MPD_TLS_CERT: 'server.crt',
      MPD_TLS_KEY: 'server.key',
      MPD_TLS_CLIENT_CA: 'ca.crt',
      MPD_TLS_CA: 'ca.crt',
      MPD_TLS_CLIENT_CERT: 'client.crt',
      MPD_TLS_CLIENT_KEY: 'client.key',
      MPD_JOIN_TOKEN: JOIN,
    };
    // A heartbeat timeout of 30 s: no worker is to be lost here, and a 2 s lease is one a loaded
    // machine misses (beside another suite, at load 30, this test ran past its 60 s with it).
    const orchestrator = cli(
      'orchestrator',
      ['--port', '0', '--host', '127.0.0.1', '--heartbeat-interval', '0.2', '--heartbeat-timeout', '30'],
      { ...tlsEnv, MPD_PIPELINE: pipelineFile },
    );
    const url = await orchestrator.listeningUrl();
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const worker = cli(
      'worker',
      ['--port', '0', '--host', '127.0.0.1', '--id', 'w-cli-tls', '--orchestrator', url, '--pipeline', pipelineFile],
      tlsEnv,
    );
    expect(await worker.listeningUrl()).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(await orchestrator.exited).toBe(0);
    expect(orchestrator.stdout()).toMatch(/Pipeline 'tls-cli' Successful/);
    await worker.stop();
    // 120 s: two CLIs started in turn and the worker's module hosts, all process starts (43 s at
    // load 25 with the 30 s lease).
  }, 120_000);
});
