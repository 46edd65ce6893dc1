/**
 * Issue 10, case 1: a connection blip must not run a module twice. The execute call of a 6 s
 * module is reset 2 s in by a TCP proxy between the orchestrator and a healthy worker: the
 * orchestrator sends the same executionId again to the same worker on a fresh connection, the
 * worker joins the execution it runs, and the module runs once.
 */
import { join } from 'node:path';
import { killLeftovers, orchestratorArgs, startFaultProxy, workerArgs, type FaultProxy } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import * as kit from './attempts-kit.js';

let proxy: FaultProxy | undefined;
afterEach(async () => {
  killLeftovers();
  await proxy?.close();
  proxy = undefined;
});

describe('re-sends (case 1)', () => {
  it('an execute connection reset 2 s into a 6 s module: the same attempt is sent again, the module runs once, the run succeeds', async () => {
    const dir = kit.tempDir();
    const [ledger, report] = [join(dir, 'ledger'), join(dir, 'report.json')];
    proxy = await startFaultProxy();
    // The first execute call's connection is reset 2 s after it was sent.
    proxy.faultNext({ kind: 'reset', afterMs: 2_000 }, /^POST \/api\/execution\/execute/);
    const orchestrator = await kit.startCli(
      'orchestrator',
      orchestratorArgs('0', '--pipeline', kit.LEDGER_PIPELINE, '--report', report, '--heartbeat-timeout', '10'),
    );
    const worker = await kit.startCli(
      'worker',
      workerArgs(orchestrator.url, 'blip', '--pipeline', kit.LEDGER_PIPELINE, '--endpoint', proxy.url),
      { MPD_LEDGER: ledger, MPD_LEDGER_MS: '6000' },
    );
    proxy.setTarget({ port: Number(new URL(worker.url).port) });

    expect(await orchestrator.exited, orchestrator.output()).toBe(0);
    expect(proxy.stats.resets).toBe(1);
    expect(proxy.stats.accepted).toBeGreaterThanOrEqual(2); // the re-send went on a fresh connection
    expect(orchestrator.stderr()).toMatch(/execute call failed on the way; sending it again to the same worker/);

    const runs = kit.readLedger(ledger);
    expect(runs.map((run) => run.end)).toEqual(['finished']);
    kit.expectNoOverlap(runs);
    const result = kit.readReport(report);
    kit.expectAcceptedOnce(result, runs);
    // The run ended before the module's 20 s timeout, counted from the module's start: the re-send
    // joined the run under way rather than waiting for the timeout (and its margin). Until round X
    // this was 30 s from before the two CLI starts, which took the whole margin at load 20 (30.5 s).
    expect(Date.parse(result.endTime) - runs[0]!.startedAt).toBeLessThan(20_000);
    // One attempt, sent twice: no second attempt, nothing lost.
    expect(kit.moduleOf(result, 'work').attempts.map((attempt) => [attempt.workerId, attempt.outcome])).toEqual([
      ['blip', 'Succeeded'],
    ]);
    await kit.stopAll([worker]);
    await kit.expectNoModuleProcessLeft(runs);
  }, 60_000);
});
