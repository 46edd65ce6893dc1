/**
 * Issue 10, case 8: a worker registered with a wrong `--endpoint` (a typo that hits another
 * orchestrator's port, which answers 404 RouteNotFound) beside a healthy worker. The answer
 * proves the endpoint is not that worker: it is quarantined for the run, the attempt is lost
 * (not `DispatchRejected`), and the module, and every later one, goes to the healthy worker.
 */
import { join } from 'node:path';
import { startOrchestrator } from '@mpd/orchestrator';
import { killLeftovers, orchestratorArgs, workerArgs } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import * as kit from './attempts-kit.js';

afterEach(killLeftovers);

describe('broken endpoints (case 8)', () => {
  it("a worker whose --endpoint is another orchestrator's port, beside a healthy one: quarantined after one answer, the run succeeds on the healthy worker", async () => {
    const dir = kit.tempDir();
    const [ledger, report] = [join(dir, 'ledger'), join(dir, 'report.json')];
    const orchestrator = await kit.startCli(
      'orchestrator',
      orchestratorArgs('0', '--pipeline', kit.LEDGER_PIPELINE, '--min-workers', '2', '--report', report),
    );
    const env = { MPD_LEDGER: ledger, MPD_LEDGER_MS: '500' };
    // The run's own orchestrator refuses its own address as an endpoint (issue 11, case 5).
    const other = await startOrchestrator({ port: 0, host: '127.0.0.1' });
    // Registered first, so that it gets the first module (ties go to registry order).
    const typo = await kit.startCli(
      'worker',
      workerArgs(orchestrator.url, 'typo', '--pipeline', kit.LEDGER_PIPELINE, '--endpoint', other.url),
      env,
    );
    await expect
      .poll(() => typo.output(), { timeout: 15_000, interval: 20, message: 'typo to register' })
      .toMatch(/registered with the orchestrator/);
    const healthy = await kit.startCli(
      'worker',
      workerArgs(orchestrator.url, 'healthy', '--pipeline', kit.LEDGER_PIPELINE),
      env,
    );

    expect(await orchestrator.exited, orchestrator.output()).toBe(0);
    const result = kit.readReport(report);
    const work = kit.moduleOf(result, 'work');
    expect(work.attempts.map((attempt) => [attempt.workerId, attempt.outcome])).toEqual([
      ['typo', 'Lost'],
      ['healthy', 'Succeeded'],
    ]);
    expect(work.attempts[0]!.error).toMatch(/404 RouteNotFound .*not an mpd worker/);
    expect(kit.moduleOf(result, 'after')).toMatchObject({ status: 'Successful', workerId: 'healthy' });
    expect(JSON.stringify(result)).not.toMatch(/DispatchRejected/);
    expect(orchestrator.stderr().match(/"msg":"worker quarantined for this run"/g)).toHaveLength(1);

    const runs = kit.readLedger(ledger);
    expect(runs).toHaveLength(1);
    kit.expectNoOverlap(runs);
    kit.expectAcceptedOnce(result, runs);
    await kit.stopAll([typo, healthy]);
    await other.close();
    await kit.expectNoModuleProcessLeft(runs);
  }, 60_000);
});
