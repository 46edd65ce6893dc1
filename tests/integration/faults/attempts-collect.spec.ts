/**
 * Issue 10, case 4: only the worker's API port is cut (a TCP proxy in front of it drops all
 * traffic) while a 5 s module with a 20 s timeout runs; heartbeats go straight to the
 * orchestrator and keep flowing. The module finishes, its answer is dropped; once the worker's
 * heartbeats no longer list the execution, the orchestrator asks again with the same
 * executionId and collects the outcome the worker kept, well before timeout + margin.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { killLeftovers, orchestratorArgs, startFaultProxy, workerArgs, type FaultProxy } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import * as kit from './attempts-kit.js';

let proxy: FaultProxy | undefined;
afterEach(async () => {
  killLeftovers();
  await proxy?.close();
  proxy = undefined;
});

describe('collecting a finished outcome whose answer was lost (case 4)', () => {
  it("the worker's API port black-holed while a 5 s module runs, healed after 8 s: the outcome is asked for again and the run succeeds long before timeout + margin", async () => {
    const dir = kit.tempDir();
    const [ledger, report] = [join(dir, 'ledger'), join(dir, 'report.json')];
    proxy = await startFaultProxy();
    const orchestrator = await kit.startCli(
      'orchestrator',
      orchestratorArgs('0', '--pipeline', kit.LEDGER_PIPELINE, '--report', report, '--heartbeat-timeout', '10'),
    );
    const worker = await kit.startCli(
      'worker',
      workerArgs(orchestrator.url, 'cut-off', '--pipeline', kit.LEDGER_PIPELINE, '--endpoint', proxy.url),
      { MPD_LEDGER: ledger, MPD_LEDGER_MS: '5000' },
    );
    proxy.setTarget({ port: Number(new URL(worker.url).port) });

    await expect
      .poll(() => kit.readLedger(ledger).length, { timeout: 15_000, interval: 20, message: 'work to start' })
      .toBe(1);
    const begun = kit.readLedger(ledger)[0]!.startedAt;
    proxy.fault({ kind: 'black-hole' });
    // The module finishes at 5 s and its answer is dropped; the port comes back at 8 s.
    await sleep(Math.max(0, begun + 8_000 - Date.now()));
    expect(kit.readLedger(ledger)[0]!.end).toBe('finished');
    expect(proxy.stats.droppedBytes).toBeGreaterThan(0);
    proxy.heal();

    expect(await orchestrator.exited, orchestrator.output()).toBe(0);
    // The module's timeout is 20 s and the margin 60 s: the outcome came long before 80 s (about
    // 3 s after its worker stopped listing it, or one grace period later if that ask fell into
    // the black hole just before the heal).
    expect(Date.now() - begun).toBeLessThan(30_000);
    expect(orchestrator.stderr()).toMatch(/the worker no longer runs the attempt and its answer has not arrived/);

    const runs = kit.readLedger(ledger);
    expect(runs.map((run) => run.end)).toEqual(['finished']);
    kit.expectNoOverlap(runs);
    const result = kit.readReport(report);
    kit.expectAcceptedOnce(result, runs);
    expect(kit.moduleOf(result, 'work').attempts.map((attempt) => attempt.outcome)).toEqual(['Succeeded']);
    await kit.stopAll([worker]);
    await kit.expectNoModuleProcessLeft(runs);
  }, 60_000);
});
