/**
 * `Cluster.expireAllBut` (helpers/cluster.ts), which several specs use to make a worker
 * `Offline`: deterministic whatever heartbeat of another worker is on its way.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../helpers/cluster.js';

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

describe('Cluster.expireAllBut', () => {
  it('makes the other workers Offline at once, even when a heartbeat of theirs sent before they stopped lands right after', async () => {
    cluster = new Cluster();
    await cluster.startOrchestrator();
    const live = await cluster.startWorker({ id: 'w-live' });
    const stopped = await cluster.startWorker({ id: 'w-stopped' });
    await Promise.all([live.link!.registered(), stopped.link!.registered()]);
    const registry = cluster.orchestrator.registry;
    const offline: string[] = [];
    registry.onChange((event) => event.type === 'offline' && offline.push(event.workerId));
    // Its heartbeats stop, as a frozen process's would.
    (stopped.link as unknown as { stopController: AbortController }).stopController.abort();
    cluster.expireAllBut(live);
    // A heartbeat it sent before it stopped, landing after the clock moved (the race: the
    // orchestrator's next sweep then found it fresh, and it never went Offline).
    registry.heartbeat('w-stopped', 0);
    // Several of the orchestrator's sweeps (every 50 ms): nothing changes what the helper did.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(offline).toEqual(['w-stopped']);
    expect(registry.get('w-live')?.status).not.toBe('Offline');
  });
});
