/**
 * A registration whose answer was lost, with real processes: an orchestrator CLI with a join
 * token and a long heartbeat timeout (120 s, the default), a worker CLI registering through a
 * TCP proxy that lets the first registration through to the orchestrator and resets the
 * connection as the answer begins. The worker's retry (its registration key, the next
 * sequence) is taken at once: the run's one module runs within seconds. Before round K the
 * retry got 409 `WorkerIdTaken` with `Retry-After: 121`, and the module waited for it.
 */
import { type FaultProxy, killLeftovers, orchestratorArgs, startFaultProxy, workerArgs } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { fixture, runReport, startListening } from '../helpers/cli-runs.js';

const JOIN = 'registration-join-token-0123456789';

let proxy: FaultProxy | undefined;
afterEach(async () => {
  killLeftovers();
  await proxy?.close();
  proxy = undefined;
});

const start = (pkg: 'orchestrator' | 'worker', args: string[]) =>
  startListening(pkg, args, { cleanEnv: true, env: { MPD_JOIN_TOKEN: JOIN } });

describe('a worker whose first registration answer was lost (real processes, a TCP proxy)', () => {
  it('retries with its registration key and runs the module within seconds, not after the 121 s Retry-After', async () => {
    const report = runReport('mpd-registration-');
    const pipeline = fixture('registration.pipeline.ts');
    // The default heartbeat timeout (the last --heartbeat-timeout given wins): a refused retry
    // would wait 121 s, past this test's 60 s.
    const orchestrator = await start(
      'orchestrator',
      orchestratorArgs(0, '--heartbeat-timeout', '120', '--pipeline', pipeline, '--report', report.file),
    );
    proxy = await startFaultProxy({ port: Number(new URL(orchestrator.url).port) });
    proxy.faultNextRequest({ kind: 'lose-answer' }, /POST \/api\/workers\/register/);
    // One slot: the pipeline has one module (a worker starts a module host per slot, ~1 s of CPU each).
    const worker = await start('worker', workerArgs(proxy.url, 'w-lost', '--pipeline', pipeline, '--slots', '1'));

    expect(await orchestrator.exited, orchestrator.output()).toBe(0);
    const result = report.read();
    expect(result.modules).toMatchObject([{ name: 'where', status: 'Successful', workerId: 'w-lost' }]);
    // The first answer was lost (the proxy reset it), the retry taken: no 409 on the way.
    expect(proxy.stats.resets).toBe(1);
    const log = worker.output();
    expect(log).toMatch(/registration failed; retrying/);
    expect(log).not.toMatch(/WorkerIdTaken/);
    expect(log.match(/registered with the orchestrator/g)).toHaveLength(1);
  });
});
