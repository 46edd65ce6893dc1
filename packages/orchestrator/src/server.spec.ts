import { createOrchestratorClient } from '@mpd/client';
import { afterEach, describe, expect, it } from 'vitest';
import { OrchestratorConfigError, OrchestratorStartError } from './errors.js';
import type { NodeRegistryEvent } from './registry/node-registry.js';
import { reachableHost, type RunningOrchestrator, startOrchestrator } from './server.js';

const running: RunningOrchestrator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((orchestrator) => orchestrator.close()));
});

async function start(options: Parameters<typeof startOrchestrator>[0]): Promise<RunningOrchestrator> {
  const orchestrator = await startOrchestrator(options);
  running.push(orchestrator);
  return orchestrator;
}

describe('startOrchestrator', () => {
  it('listens on a free port, prints a reachable URL and serves the API', async () => {
    const orchestrator = await start({ port: 0, host: '127.0.0.1', heartbeatIntervalSeconds: 5 });
    expect(orchestrator.url).toBe(`http://127.0.0.1:${orchestrator.port}`);
    expect(orchestrator.port).toBeGreaterThan(0);
    const client = createOrchestratorClient({ baseUrl: orchestrator.url, validateResponse: true, timeoutMs: 2_000 });
    try {
      const registered = await client.workers.register({
        body: {
          workerNode: {
            id: 'w1',
            endpoint: 'http://w1:9000',
            capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
          },
        },
      });
      expect(registered.body).toMatchObject({ heartbeatIntervalSeconds: 5 });
      expect(orchestrator.registry.get('w1')?.status).toBe('Available');
    } finally {
      await client.close();
    }
  });

  it('sweeps the registry on a timer, so listeners learn of lost workers without polling', async () => {
    const orchestrator = await start({ port: 0, host: '127.0.0.1', heartbeatTimeoutMs: 100, sweepIntervalMs: 20 });
    const events: NodeRegistryEvent[] = [];
    orchestrator.registry.onChange((event) => events.push(event));
    orchestrator.registry.register({
      id: 'w1',
      endpoint: 'http://w1:9000',
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
    });
    const offline = new Promise<NodeRegistryEvent>((resolve) => {
      orchestrator.registry.onChange((event) => event.type === 'offline' && resolve(event));
    });
    await expect(offline).resolves.toEqual({ type: 'offline', workerId: 'w1' });
    expect(events.map((event) => event.type)).toEqual(['registered', 'offline']);
  });

  it('stops serving and sweeping on close, and close can be called twice', async () => {
    const orchestrator = await startOrchestrator({
      port: 0,
      host: '127.0.0.1',
      heartbeatTimeoutMs: 50,
      sweepIntervalMs: 10,
    });
    expect((await fetch(`${orchestrator.url}/api/health`)).status).toBe(200);
    await orchestrator.close();
    await orchestrator.close();
    await expect(fetch(`${orchestrator.url}/api/health`)).rejects.toThrow();
    const swept: string[] = [];
    orchestrator.registry.onChange((event) => swept.push(event.type));
    orchestrator.registry.register({
      id: 'w1',
      endpoint: 'http://w1:9000',
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
    });
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(swept).toEqual(['registered']);
  });

  it('fails with ListenFailed when the port is taken', async () => {
    const first = await start({ port: 0, host: '127.0.0.1' });
    const error = await startOrchestrator({ port: first.port, host: '127.0.0.1' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OrchestratorStartError);
    expect(error).toMatchObject({ code: 'ListenFailed', message: expect.stringContaining(`127.0.0.1:${first.port}`) });
  });

  it('refuses invalid options, naming them', async () => {
    await expect(startOrchestrator({ port: 70_000 })).rejects.toThrow(/port/);
    await expect(startOrchestrator({ port: 0, heartbeatIntervalSeconds: 0 })).rejects.toBeInstanceOf(
      OrchestratorConfigError,
    );
    await expect(startOrchestrator({ port: 0, heartbeatTimeoutMs: -1 })).rejects.toThrow(/heartbeatTimeoutMs/);
  });
});

describe('reachableHost', () => {
  it.each([
    ['0.0.0.0', '127.0.0.1'],
    ['::', '[::1]'],
    ['127.0.0.1', '127.0.0.1'],
    ['orchestrator.local', 'orchestrator.local'],
    ['::1', '[::1]'],
  ])('%s -> %s', (host, expected) => {
    expect(reachableHost(host)).toBe(expected);
  });
});
