/**
 * Issue 11, case 5 at the HTTP API: the registrations the issue made (the metadata address with
 * its path, its decimal and IPv4-mapped forms, `http://0/`, userinfo, a query, the orchestrator's
 * own port, with and without `--allowed-worker-hosts 127.0.0.1`) get 400 naming
 * `body.workerNode.endpoint` and why, and register nothing. Names resolve by an injected resolver.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WORKER_ENDPOINT_RULE } from '@mpd/contract';
import { SPEC_EXAMPLES } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../app.js';
import { OrchestratorConfigError } from '../errors.js';
import type { OrchestratorOptions } from '../orchestrator-options.js';
import { InMemoryNodeRegistry } from '../registry/in-memory-node-registry.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) server.closeAllConnections();
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
});

const NAMES: Record<string, readonly string[]> = {
  localhost: ['127.0.0.1'],
  'metadata.test': ['169.254.169.254'],
};

async function orchestrator(options: OrchestratorOptions = {}) {
  const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
  const resolveHost = async (hostname: string) => {
    const addresses = NAMES[hostname];
    if (addresses) return addresses;
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  };
  const app = createApp({ registry, options: { validateResponses: true, resolveHost, ...options } });
  const server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  servers.push(server);
  const port = (server.address() as AddressInfo).port;
  let registrations = 0;
  const register = async (endpoint: string, body: unknown = undefined) => {
    const response = await fetch(`http://127.0.0.1:${port}/api/workers/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(
        body ?? {
          workerNode: {
            // A new id each time: a live id registered again without its credential is a 409.
            id: `w${++registrations}`,
            endpoint,
            capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
          },
        },
      ),
    });
    return {
      status: response.status,
      json: (await response.json()) as { code?: string; issues?: { field: string; message: string }[] },
    };
  };
  return { port, registry, register };
}

describe('registration: the endpoint is scheme://host:port only', () => {
  it.each([
    'http://169.254.169.254/latest/meta-data/',
    'http://w1:9000/?x=',
    'http://w1:9000/api',
    'http://user:secret@w1:9000',
    'http://w1:9000/#top',
  ])('%s: 400 ValidationFailed naming body.workerNode.endpoint and the rule', async (endpoint) => {
    const { register, registry } = await orchestrator();
    const answer = await register(endpoint);
    expect(answer.status).toBe(400);
    expect(answer.json.code).toBe('ValidationFailed');
    expect(answer.json.issues).toEqual([{ field: 'body.workerNode.endpoint', message: WORKER_ENDPOINT_RULE }]);
    expect(registry.snapshot()).toEqual([]);
  });

  it("keeps the spec's example registration (http://worker1:9000, a name that does not resolve here) valid", async () => {
    const { register } = await orchestrator();
    expect((await register('', SPEC_EXAMPLES.register)).status).toBe(200);
  });
});

describe('registration: addresses refused by default', () => {
  it.each([
    ['http://169.254.169.254/', /169\.254\.169\.254: a link-local address/],
    ['http://2852039166/', /169\.254\.169\.254: a link-local address/],
    ['http://0xa9fea9fe:80', /169\.254\.169\.254: a link-local address/],
    ['http://[::ffff:169.254.169.254]/', /\[::ffff:a9fe:a9fe\]: a link-local address/],
    ['http://[::ffff:a9fe:a9fe]/', /a link-local address/],
    ['http://[fe80::1]:9000', /a link-local address \(fe80::\/10\)/],
    ['http://0/', /0\.0\.0\.0: an unspecified address/],
    ['http://[::]:9000', /an unspecified address/],
    ['http://224.0.0.1:9000', /a multicast address/],
    ['http://255.255.255.255:9000', /the broadcast address/],
  ])('%s: 400 EndpointNotAllowed naming the reason', async (endpoint, reason) => {
    const { register, registry } = await orchestrator();
    const answer = await register(endpoint);
    expect(answer.status).toBe(400);
    expect(answer.json.code).toBe('EndpointNotAllowed');
    expect(answer.json.issues).toHaveLength(1);
    expect(answer.json.issues![0]!.field).toBe('body.workerNode.endpoint');
    expect(answer.json.issues![0]!.message).toMatch(reason);
    expect(registry.snapshot()).toEqual([]);
  });

  it("refuses the orchestrator's own address and port, as an address or a name", async () => {
    const { register, port } = await orchestrator();
    for (const endpoint of [`http://127.0.0.1:${port}`, `http://localhost:${port}/`]) {
      const answer = await register(endpoint);
      expect(answer.json.code, endpoint).toBe('EndpointNotAllowed');
      expect(answer.json.issues![0]!.message).toMatch(new RegExp(`port ${port}: the orchestrator's own address$`));
    }
  });

  it('keeps loopback and private addresses allowed (localhost:22 included)', async () => {
    const { register } = await orchestrator();
    for (const endpoint of ['http://127.0.0.1:9', 'http://localhost:22', 'http://10.0.0.7:9000', 'http://[::1]:9000']) {
      expect((await register(endpoint)).status, endpoint).toBe(200);
    }
  });

  it("with --allowed-worker-hosts 127.0.0.1: still refuses the orchestrator's own port, allows other ports", async () => {
    const { register, port } = await orchestrator({ allowedWorkerHosts: ['127.0.0.1'] });
    const own = await register(`http://127.0.0.1:${port}`);
    expect(own).toMatchObject({ status: 400, json: { code: 'EndpointNotAllowed' } });
    expect(own.json.issues![0]!.message).toMatch(/the orchestrator's own address/);
    expect((await register('http://10.0.0.7:9000')).json.issues![0]!.message).toMatch(
      /not in the orchestrator's allowed worker hosts/,
    );
    expect((await register('http://127.0.0.1:9')).status).toBe(200);
  });
});

describe('--allowed-worker-hosts', () => {
  it('an entry with a / that is no address range stops the app from being made, naming the setting', () => {
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
    const make = () => createApp({ registry, options: { allowedWorkerHosts: ['*.ci.internal', '10.0.0.0/33'] } });
    expect(make).toThrow(OrchestratorConfigError);
    expect(make).toThrow("Invalid setting allowedWorkerHosts: '10.0.0.0/33' is no address range");
  });
});
