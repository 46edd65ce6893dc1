/**
 * The worker endpoint policy (issue 11, case 5: SSRF through endpoints). Pure checks: names are
 * resolved by an injected resolver, nothing connects anywhere.
 */
import { networkInterfaces } from 'node:os';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { OrchestratorConfigError } from '../errors.js';
import {
  EndpointRefusedError,
  type HostResolver,
  REGISTRATION_RESOLVE_WAIT_MS,
  WorkerEndpointPolicy,
} from './endpoint-policy.js';

/** A resolver answering from `names`; other names do not resolve (`ENOTFOUND`, as getaddrinfo says). */
function resolverOf(names: Record<string, readonly string[]>): HostResolver {
  return async (hostname) => {
    const addresses = names[hostname];
    if (addresses) return addresses;
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  };
}

const NAMES = {
  localhost: ['127.0.0.1', '::1'],
  'metadata.test': ['169.254.169.254'],
  'half-metadata.test': ['10.0.0.5', 'fe80::1'],
  'lan.test': ['10.0.0.7'],
  'b7.ci.internal': ['10.0.0.8'],
  'bad.ci.internal': ['169.254.169.254'],
};

const policyOf = (allowedWorkerHosts?: string[]) =>
  new WorkerEndpointPolicy({ allowedWorkerHosts, resolveHost: resolverOf(NAMES) });

afterEach(() => {
  vi.useRealTimers();
});

describe('worker endpoint policy: refused by default', () => {
  // Every form of the metadata address and its neighbours that reaches them: the URL parser
  // normalises the IPv4 spellings, the policy unwraps IPv4 carried in IPv6.
  it.each([
    ['http://169.254.169.254/', 'link-local'],
    ['http://2852039166/', 'link-local'], // decimal
    ['http://0xa9fea9fe/', 'link-local'], // hex
    ['http://0xA9.0xFE.0xA9.0xFE/', 'link-local'], // hex per part
    ['http://0251.0376.0251.0376/', 'link-local'], // octal
    ['http://169.254.43518/', 'link-local'], // three parts
    ['http://[::ffff:169.254.169.254]/', 'link-local'], // IPv4-mapped IPv6
    ['http://[::ffff:a9fe:a9fe]/', 'link-local'],
    ['http://[0:0:0:0:0:ffff:a9fe:a9fe]:80', 'link-local'],
    ['http://[::ffff:0:a9fe:a9fe]/', 'link-local'], // IPv4-translated (RFC 6145)
    ['http://[64:ff9b::a9fe:a9fe]/', 'link-local'], // NAT64 (RFC 6052)
    ['http://[::169.254.169.254]/', 'link-local'], // IPv4-compatible
    ['http://169.254.170.2:80', 'link-local'], // ECS task metadata
    ['http://[fe80::1]:9000', 'link-local'],
    ['http://[febf:ffff::1]:9000', 'link-local'],
    ['http://[fd00:ec2::254]/', 'metadata'], // AWS IMDS over IPv6
    ['http://100.100.100.200/', 'metadata'], // Alibaba Cloud
    ['http://224.0.0.1:9000', 'multicast'],
    ['http://239.255.255.250:1900', 'multicast'],
    ['http://[ff02::1]:9000', 'multicast'],
    ['http://0.0.0.0:9000', 'unspecified'],
    ['http://0:9000/', 'unspecified'],
    ['http://0.1.2.3:9000', 'unspecified'],
    ['http://[::]:9000', 'unspecified'],
    ['http://[::ffff:0.0.0.0]:9000', 'unspecified'],
    ['http://255.255.255.255:9000', 'broadcast'],
    ['http://4294967295:9000', 'broadcast'],
  ])('%s: %s', async (endpoint, kind) => {
    const refusal = await policyOf().check(endpoint);
    expect(refusal?.reason).toMatch(kind === 'metadata' ? /a cloud metadata address/ : new RegExp(`(an?|the) ${kind}`));
  });

  it('registers a name as it is, and checks every address it resolves to at each connection', async () => {
    let asked = 0;
    const policy = new WorkerEndpointPolicy({
      resolveHost: async (hostname) => {
        asked++;
        return (NAMES as Record<string, readonly string[]>)[hostname] ?? [];
      },
    });
    // No resolver is asked at registration: only connecting needs a name's addresses.
    expect(await policy.check('http://metadata.test/')).toBeUndefined();
    expect(asked).toBe(0);
    await expect(policy.addressesFor('metadata.test', 80)).rejects.toThrow(
      'metadata.test:80 is not allowed: metadata.test resolves to 169.254.169.254: a link-local address (169.254.0.0/16, where cloud metadata services answer)',
    );
    await expect(policy.addressesFor('half-metadata.test', 9000)).rejects.toThrow(
      /half-metadata\.test resolves to fe80::1: a link-local address/,
    );
    expect(asked).toBe(2);
  });

  it.each([
    'http://127.0.0.1:9000',
    'http://127.0.0.2:9000',
    'http://[::1]:9000',
    'http://localhost:22',
    'http://10.0.0.7:9000',
    'http://172.16.0.1:9000',
    'http://192.168.1.2:9000',
    'http://[fd12::1]:9000',
    'http://lan.test:9000',
    'https://203.0.113.9',
  ])('allows %s (loopback, private, public)', async (endpoint) => {
    expect(await policyOf().check(endpoint)).toBeUndefined();
  });

  it('registers a name that does not resolve (yet): its addresses are checked at each connection', async () => {
    expect(await policyOf().check('http://worker1:9000')).toBeUndefined();
    await expect(policyOf().addressesFor('worker1', 9000)).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it(`waits at most ${REGISTRATION_RESOLVE_WAIT_MS} ms for a name an address-range allow-list needs resolved`, async () => {
    vi.useFakeTimers();
    const policy = new WorkerEndpointPolicy({
      allowedWorkerHosts: ['10.0.0.0/8'],
      resolveHost: () => new Promise(() => {}),
    });
    const checked = policy.check('http://slow.test:9000');
    await vi.advanceTimersByTimeAsync(REGISTRATION_RESOLVE_WAIT_MS);
    await expect(checked).resolves.toMatchObject({ reason: expect.stringMatching(/does not resolve/) });
  });

  it('knows localhost without a resolver (RFC 6761): loopback', async () => {
    const policy = new WorkerEndpointPolicy({
      resolveHost: () => Promise.reject(new Error('no resolver may be asked about localhost')),
    });
    expect(await policy.check('http://localhost:22')).toBeUndefined();
    expect(await policy.addressesFor('worker.localhost', 9000)).toEqual(['127.0.0.1', '::1']);
  });
});

describe("worker endpoint policy: the orchestrator's own address", () => {
  it('refuses its listening address and port, however written or resolved', async () => {
    const policy = policyOf();
    policy.addOwnListener({ host: '127.0.0.1', port: 8080 });
    for (const endpoint of ['http://127.0.0.1:8080', 'http://[::ffff:127.0.0.1]:8080/', 'http://2130706433:8080']) {
      expect((await policy.check(endpoint))?.reason, endpoint).toMatch(/port 8080: the orchestrator's own address$/);
    }
    expect((await policy.check('http://localhost:8080'))?.reason).toBe(
      "localhost resolves to 127.0.0.1, port 8080: the orchestrator's own address",
    );
    // Another port, or another loopback address where it does not listen: another server.
    expect(await policy.check('http://127.0.0.1:8081')).toBeUndefined();
    expect(await policy.check('http://127.0.0.2:8080')).toBeUndefined();
  });

  it('listening on every address: any address of this machine at its port', async () => {
    const policy = policyOf();
    policy.addOwnListener({ host: '0.0.0.0', port: 8080 });
    const own = Object.values(networkInterfaces())
      .flat()
      .map((entry) => entry?.address)
      .filter((address) => address !== undefined && !address.includes(':'));
    for (const address of ['127.0.0.2', ...own]) {
      expect((await policy.check(`http://${address}:8080`))?.reason, address).toMatch(/the orchestrator's own address/);
    }
    expect(await policy.check('http://10.255.0.1:8080')).toBeUndefined();
  });

  it('refuses where the registration arrived (reachedAt), for an app served by any server', async () => {
    const refusal = await policyOf().check('http://127.0.0.1:4321', { host: '::ffff:127.0.0.1', port: 4321 });
    expect(refusal?.reason).toMatch(/the orchestrator's own address/);
  });

  it('refuses it even when --allowed-worker-hosts allows the host (the issue: 127.0.0.1)', async () => {
    const policy = policyOf(['127.0.0.1']);
    policy.addOwnListener({ host: '127.0.0.1', port: 8080 });
    expect((await policy.check('http://127.0.0.1:8080'))?.reason).toMatch(/the orchestrator's own address/);
    expect(await policy.check('http://127.0.0.1:9000')).toBeUndefined();
  });
});

describe('worker endpoint policy: --allowed-worker-hosts narrows', () => {
  it.each<[string[], string, boolean]>([
    [['127.0.0.1'], 'http://127.0.0.1:9000', true],
    [['127.0.0.1'], 'http://[::ffff:7f00:1]:9000', true],
    [['127.0.0.1'], 'http://10.0.0.7:9000', false],
    [['127.0.0.1'], 'http://lan.test:9000', false],
    [['127.0.0.1'], 'http://localhost:9000', false], // also ::1, which is not listed
    [['127.0.0.1', '::1'], 'http://localhost:9000', true],
    [['10.0.0.0/8'], 'http://lan.test:9000', true],
    [['10.0.0.0/8'], 'http://10.200.0.1:9000', true],
    [['10.0.0.0/8'], 'http://192.168.0.1:9000', false],
    [['10.0.0.0/8'], 'http://worker1:9000', false], // does not resolve: no address to match
    [['*.ci.internal'], 'http://b7.ci.internal:9000', true],
    [['*.ci.internal'], 'http://B7.CI.Internal:9000', true],
    [['*.ci.internal'], 'http://unresolved.ci.internal:9000', true], // checked at connect time
    [['*.ci.internal'], 'http://ci.internal:9000', false],
    [['*.ci.internal'], 'http://evil-ci.internal:9000', false],
    [['*.ci.internal'], 'http://10.0.0.8:9000', false],
    [['worker1'], 'http://worker1:9000', true],
    [['fd00::/8'], 'http://[fd12::1]:9000', true],
  ])('%j: %s allowed = %s', async (list, endpoint, allowed) => {
    const refusal = await policyOf(list).check(endpoint);
    if (allowed) expect(refusal).toBeUndefined();
    else expect(refusal?.reason).toMatch(/not in the orchestrator's allowed worker hosts \(--allowed-worker-hosts\)/);
  });

  it('never allows a refused address, whatever the list says', async () => {
    await expect(policyOf(['*.ci.internal']).addressesFor('bad.ci.internal', 80)).rejects.toThrow(/link-local/);
    expect((await policyOf(['169.254.0.0/16']).check('http://169.254.169.254/'))?.reason).toMatch(/link-local/);
  });

  it('refuses an entry that looks like a range and is not, naming the setting', () => {
    for (const entry of ['10.0.0.0/33', '10.0.0.0/x', 'fd00::/129']) {
      expect(() => policyOf([entry]), entry).toThrow(OrchestratorConfigError);
      expect(() => policyOf([entry]), entry).toThrow(/allowedWorkerHosts: '.*' is no address range/);
    }
  });
});

describe('worker endpoint policy: at connect time (addressesFor)', () => {
  it('answers the addresses checked, for names and addresses', async () => {
    expect(await policyOf().addressesFor('lan.test', 9000)).toEqual(['10.0.0.7']);
    expect(await policyOf().addressesFor('127.0.0.1', 9000)).toEqual(['127.0.0.1']);
    expect(await policyOf().addressesFor('::1', 9000)).toEqual(['::1']);
  });

  it('refuses a name that resolves to a refused address now, and an address given as such', async () => {
    let answer: readonly string[] = ['127.0.0.1'];
    const policy = new WorkerEndpointPolicy({ resolveHost: async () => answer });
    policy.addOwnListener({ host: '127.0.0.1', port: 8080 });
    expect(await policy.check('http://rebind.test:9000')).toBeUndefined();
    answer = ['169.254.169.254'];
    await expect(policy.addressesFor('rebind.test', 9000)).rejects.toThrow(EndpointRefusedError);
    await expect(policy.addressesFor('rebind.test', 9000)).rejects.toThrow(
      'rebind.test:9000 is not allowed: rebind.test resolves to 169.254.169.254: a link-local address',
    );
    answer = ['127.0.0.1'];
    await expect(policy.addressesFor('rebind.test', 8080)).rejects.toThrow(/the orchestrator's own address/);
    await expect(policy.addressesFor('169.254.169.254', 80)).rejects.toThrow(EndpointRefusedError);
    await expect(policy.addressesFor('::ffff:a9fe:a9fe', 80)).rejects.toThrow(EndpointRefusedError);
  });
});
