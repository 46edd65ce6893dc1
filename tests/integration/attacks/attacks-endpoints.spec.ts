/**
 * Issue 11, case 5: worker endpoints as a way into the orchestrator's network (SSRF), against
 * real servers on 127.0.0.1. A join-token holder's registrations of the metadata address (and
 * its encodings), `http://0/`, userinfo, a path and query, and the orchestrator itself (also with
 * `--allowed-worker-hosts 127.0.0.1`) are refused with 400; a name that resolves elsewhere after
 * it registered is refused when the orchestrator connects: the attempt is lost as a broken
 * endpoint and the module's body (its environment and secrets) is never sent.
 *
 * Names resolve by a resolver the test injects (no DNS). The addresses a name turns into after
 * registration stay on this machine even if the check were missing: `0.0.0.0` (which connects
 * to this machine) and the orchestrator's own port. Nothing here sends traffic to 169.254.0.0/16.
 */
import { ADDRESS_REFUSED } from '@mpd/client';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { runPipeline } from '@mpd/orchestrator';
import { type FaultProxy, startFaultProxy } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, silent } from '../helpers/cluster.js';

const JOIN = 'attacks-endpoints-join-token';

let cluster: Cluster | undefined;
let proxy: FaultProxy | undefined;
afterEach(async () => {
  await cluster?.close();
  await proxy?.close();
  cluster = proxy = undefined;
});

/** Names the test resolves, changed while the cluster runs (a DNS record an attacker controls). */
const names = new Map<string, readonly string[]>();
const resolveHost = async (hostname: string): Promise<readonly string[]> => {
  const addresses = names.get(hostname);
  if (addresses) return addresses;
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
};

describe('endpoints refused at registration (case 5)', () => {
  it("refuses the issue's endpoints from a join-token holder with 400, registering none", async () => {
    cluster = new Cluster();
    // A name is checked on its addresses when the orchestrator connects (see below), not here.
    const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN, resolveHost });
    const register = async (id: string, endpoint: string) => {
      const response = await fetch(`${orchestrator.url}/api/workers/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${JOIN}` },
        body: JSON.stringify({
          workerNode: {
            id,
            endpoint,
            capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
          },
        }),
      });
      return { status: response.status, body: (await response.json()) as { code: string; errorMessage: string } };
    };
    const refused: [string, 'ValidationFailed' | 'EndpointNotAllowed'][] = [
      ['http://169.254.169.254/latest/meta-data/', 'ValidationFailed'],
      ['http://169.254.169.254/', 'EndpointNotAllowed'],
      ['http://2852039166/', 'EndpointNotAllowed'],
      ['http://[::ffff:169.254.169.254]/', 'EndpointNotAllowed'],
      ['http://0/', 'EndpointNotAllowed'],
      ['http://user:secret@127.0.0.1:9', 'ValidationFailed'],
      [`${orchestrator.url}/?x=`, 'ValidationFailed'],
      [orchestrator.url, 'EndpointNotAllowed'],
      [orchestrator.url.replace('127.0.0.1', '[::ffff:127.0.0.1]'), 'EndpointNotAllowed'],
    ];
    for (const [index, [endpoint, code]] of refused.entries()) {
      const answer = await register(`w${index}`, endpoint);
      expect([answer.status, answer.body.code], endpoint).toEqual([400, code]);
      expect(answer.body.errorMessage).toMatch(/^body\.workerNode\.endpoint: /);
    }
    expect(orchestrator.registry.snapshot()).toEqual([]);
  });

  it('with --allowed-worker-hosts 127.0.0.1: the orchestrator itself is still refused, a worker beside it registers', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({ allowedWorkerHosts: ['127.0.0.1'], resolveHost });
    const itself = await cluster.startWorker({ id: 'w-itself', endpoint: orchestrator.url });
    // The worker exits on a 400: its registration can never succeed.
    const exit = await itself.stopped;
    expect(exit).toMatchObject({ reason: 'registration-refused' });
    expect(exit.reason === 'registration-refused' && exit.message).toMatch(/EndpointNotAllowed.*own address/);
    const beside = await cluster.startWorker({ id: 'w-beside' });
    await beside.link!.registered();
    expect(orchestrator.registry.snapshot().map((node) => node.id)).toEqual(['w-beside']);
  });
});

describe('endpoints checked at connect time (case 5)', () => {
  const ran: string[] = [];
  const work = defineModule({
    name: 'work',
    run: (ctx) => {
      ran.push(ctx.workerId);
      return { worker: ctx.workerId };
    },
  });
  const pipeline = definePipeline({ name: 'endpoints', modules: [work] });

  /**
   * A worker behind a counting proxy at `http://rebind.test:PORT` (resolving to 127.0.0.2 at
   * registration, first in the registry, so it gets the module) and a healthy one; then
   * rebind.test resolves to `turnsInto(orchestratorPort)`, and the pipeline runs.
   */
  async function rebindAndRun(turnsInto: (orchestratorPort: number) => { name: string; port?: number }) {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({ resolveHost });
    const target = turnsInto(orchestrator.port);
    proxy = await startFaultProxy();
    // Where it resolves at registration does not matter (no connection then): not the orchestrator's.
    names.set('rebind.test', ['127.0.0.2']);
    const rebind = await cluster.startWorker({
      id: 'rebind',
      pipeline,
      endpoint: `http://rebind.test:${target.port ?? proxy.port}`,
    });
    proxy.setTarget({ port: Number(new URL(rebind.url).port) });
    await rebind.link!.registered();
    const healthy = await cluster.startWorker({ id: 'healthy', pipeline });
    await healthy.link!.registered();
    names.set('rebind.test', [target.name]);
    ran.length = 0;
    const result = await runPipeline({
      pipeline,
      registry: orchestrator.registry,
      endpointPolicy: orchestrator.endpointPolicy,
      logger: silent,
      environmentVariables: { STAGE: 'attack' },
      secretEnvironmentVariables: { API_KEY: 'the-secret-that-must-not-leave' },
    });
    return { result, connections: proxy.stats.accepted };
  }

  it.each([
    ['0.0.0.0 (which connects to this machine)', () => ({ name: '0.0.0.0' }), /0\.0\.0\.0: an unspecified address/],
    [
      "the orchestrator's own address and port",
      (orchestratorPort: number) => ({ name: '127.0.0.1', port: orchestratorPort }),
      /127\.0\.0\.1, port \d+: the orchestrator's own address/,
    ],
  ])(
    'a name that resolves to %s after registering: refused at dispatch, the attempt lost as a broken endpoint, nothing sent',
    async (_what, turnsInto, reason) => {
      const { result, connections } = await rebindAndRun(turnsInto);
      expect(result.success).toBe(true);
      const [module] = result.modules;
      expect(module!.attempts.map((attempt) => [attempt.workerId, attempt.outcome])).toEqual([
        ['rebind', 'Lost'],
        ['healthy', 'Succeeded'],
      ]);
      expect(module!.attempts[0]!.error).toContain(ADDRESS_REFUSED);
      expect(module!.attempts[0]!.error).toMatch(reason);
      // The module ran once, on the healthy worker; the rebound endpoint got no connection at all.
      expect(ran).toEqual(['healthy']);
      expect(connections).toBe(0);
    },
  );
});
