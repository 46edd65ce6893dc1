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
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FaultProxy, startFaultProxy } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, HEARTBEAT_TIMEOUT_MS, JOIN_TOKEN as JOIN } from '../helpers/cluster.js';

let cluster: Cluster | undefined;
let proxy: FaultProxy | undefined;
afterEach(async () => {
  await cluster?.close();
  await proxy?.close();
  cluster = proxy = undefined;
});

/** A secured orchestrator, a fault proxy in front of it, and a path for a credential file. */
async function securedBehindProxy() {
  cluster = new Cluster();
  const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN });
  proxy = await startFaultProxy({ port: Number(new URL(orchestrator.url).port) });
  const credentialFile = join(mkdtempSync(join(tmpdir(), 'mpd-replaced-')), 'credential');
  return { cluster, orchestrator, proxy, credentialFile };
}

describe('a worker replaced before it read its registration answer', () => {
  it('stops as replaced once thawed, and leaves the replacement’s credential in the shared credential file', async () => {
    const { cluster, orchestrator, proxy, credentialFile } = await securedBehindProxy();
    proxy.faultNext({ kind: 'hold-answers' }, /POST \/api\/workers\/register/);
    const settings = { id: 'w-late', joinToken: JOIN, credentialFile };
    const old = await cluster.startWorker({ ...settings, orchestratorUrl: proxy.url });
    // The orchestrator accepted the old process; its answer is held ("frozen" before reading it).
    await expect.poll(() => orchestrator.registry.incarnationOf('w-late'), { timeout: 5_000 }).toBeDefined();
    const oldIncarnation = orchestrator.registry.incarnationOf('w-late');
    expect(old.link!.state.status).toBe('registering');

    cluster.expireAllBut(); // the old process is Offline: another may take its id
    const replacement = await cluster.startWorker(settings);
    await replacement.link!.registered();
    const credential = replacement.link!.credential!;
    expect(readFileSync(credentialFile, 'utf8').trim()).toBe(credential);
    expect(orchestrator.registry.incarnationOf('w-late')).not.toBe(oldIncarnation);

    proxy.heal(); // thawed: the old process reads its registration answer now
    // Within seconds (heartbeats every 0.2 s); it used to register again forever (409 WorkerIdTaken).
    await expect.poll(() => old.link!.state.status, { timeout: 10_000 }).toBe('replaced');
    const exit = await old.stopped;
    expect(exit).toMatchObject({
      reason: 'replaced',
      message: expect.stringMatching(/^another process registered as worker 'w-late' /),
    });
    // The replacement keeps its id, its credential, and the file that holds it.
    expect(readFileSync(credentialFile, 'utf8').trim()).toBe(credential);
    expect(orchestrator.registry.credentialOf('w-late')).toBe(credential);
    expect(replacement.link!.state).toMatchObject({ status: 'registered', consecutiveFailures: 0 });
  });

  it('waits out a registration of its own whose answer it lost, rather than taking it for a replacement', async () => {
    const { cluster, orchestrator, proxy, credentialFile } = await securedBehindProxy();
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
    // Heartbeat 401, registration lost, then 409 WorkerIdTaken: retried while that registration is live.
    await expect
      .poll(() => worker.link!.state.status === 'registering' && worker.link!.state.lastError, { timeout: 10_000 })
      .toContain('WorkerIdTaken');
    expect(proxy.stats.resets).toBe(1);
    cluster.clock.advance(HEARTBEAT_TIMEOUT_MS + 1); // that registration, never heartbeated, is Offline
    await expect.poll(() => worker.link!.state.status, { timeout: 10_000 }).toBe('registered');
    const credential = worker.link!.credential!;
    expect(credential).not.toBe(first);
    expect(orchestrator.registry.credentialOf('w-own')).toBe(credential);
    expect(orchestrator.registry.incarnationOf('w-own')).toBe(incarnation);
    expect(readFileSync(credentialFile, 'utf8').trim()).toBe(credential);
  });
});
