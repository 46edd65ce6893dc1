/**
 * Issue 10, case 2, the runner's half: a module whose code blocks its worker's event loop for
 * 6 s (`execSync('sleep 6')`) with H=1 T=3 on two workers. Where module code shares the event
 * loop that sends heartbeats, the orchestrator declares that worker lost and runs the module
 * again on the other one; the first success that arrives, the declared-lost attempt's included,
 * is accepted once, and the module never ends Failed while one of its attempts succeeded. (That
 * heartbeats go on while a module blocks, so that nothing is lost at all, is the worker's part:
 * module isolation.)
 */
import { join } from 'node:path';
import { killLeftovers, orchestratorArgs, workerArgs } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import * as kit from './attempts-kit.js';

afterEach(killLeftovers);

describe('the first success is accepted, once (case 2, runner half)', () => {
  it('a module blocking its worker 6 s with H=1 T=3 on two workers: Successful, exactly one result accepted, the dependant gets it', async () => {
    const dir = kit.tempDir();
    const [ledger, report] = [join(dir, 'ledger'), join(dir, 'report.json')];
    const orchestrator = await kit.startCli('orchestrator', [
      ...orchestratorArgs('0', '--pipeline', kit.LEDGER_PIPELINE, '--min-workers', '2', '--report', report),
      '--heartbeat-interval',
      '1',
      '--heartbeat-timeout',
      '3',
    ]);
    const env = { MPD_LEDGER: ledger, MPD_LEDGER_MS: '6000', MPD_LEDGER_BLOCK: '1' };
    const workers = await Promise.all(
      ['busy-1', 'busy-2'].map((id) =>
        kit.startCli(
          'worker',
          workerArgs(orchestrator.url, id, '--pipeline', kit.LEDGER_PIPELINE, '--slots', '1'),
          env,
        ),
      ),
    );
    const begun = Date.now();

    expect(await orchestrator.exited, orchestrator.output()).toBe(0);
    expect(Date.now() - begun).toBeLessThan(30_000);
    const result = kit.readReport(report);
    expect(result.status).toBe('Successful');
    const runs = kit.readLedger(ledger);
    kit.expectAcceptedOnce(result, runs);
    const work = kit.moduleOf(result, 'work');
    // Whatever else happened to them, no attempt failed the module: lost ones ended Lost, or
    // gave the accepted result; one running beside them was cancelled once that was accepted.
    for (const attempt of work.attempts) expect(['Succeeded', 'Lost', 'Cancelled']).toContain(attempt.outcome);
    const accepted = work.attempts.find((attempt) => attempt.outcome === 'Succeeded')!;
    if (accepted.acceptedLate) expect(accepted.acceptedLate.after).toBe('Lost');
    await kit.stopAll(workers);
  }, 60_000);
});
