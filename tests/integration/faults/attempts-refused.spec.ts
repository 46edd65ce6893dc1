/**
 * Issue 10, case 5: the only capable worker is SIGKILLed mid-module and started again a few
 * seconds later with the same `--id` and `--credential-file`. Its endpoint refuses the re-sent
 * call: the attempt is lost once (however often the dead endpoint refuses), the worker is
 * quarantined until it registers again, and the module waits, backing off, for the restarted
 * worker, where it runs to success with the default `--max-lost-attempts`, never beside the
 * first run: only once the killed process's heartbeat lease has ended (its module host, which
 * outlives it, stops its group then at the latest).
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { killLeftovers, orchestratorArgs, workerArgs } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import * as kit from './attempts-kit.js';

afterEach(killLeftovers);

/** The heartbeat timeout (s): the killed process's lease ends at most this long after the kill. */
const TIMEOUT_S = 10;

describe('refused connections (case 5)', () => {
  it('the only capable worker SIGKILLed mid-module and restarted with its id and credential file: the run succeeds there, one loss, never two runs at once', async () => {
    const dir = kit.tempDir();
    const [ledger, report, credential] = [join(dir, 'ledger'), join(dir, 'report.json'), join(dir, 'credential')];
    // A heartbeat timeout longer than the restart: the restart, not the timeout, brings the worker back.
    const orchestrator = await kit.startCli(
      'orchestrator',
      orchestratorArgs(
        '0',
        '--pipeline',
        kit.LEDGER_PIPELINE,
        '--report',
        report,
        '--heartbeat-timeout',
        String(TIMEOUT_S),
      ),
    );
    const args = workerArgs(
      orchestrator.url,
      'phoenix',
      '--pipeline',
      kit.LEDGER_PIPELINE,
      '--credential-file',
      credential,
    );
    const env = { MPD_LEDGER: ledger, MPD_LEDGER_MS: '4000' };
    const first = await kit.startCli('worker', args, env);
    await expect
      .poll(() => kit.readLedger(ledger).length, { timeout: 15_000, interval: 20, message: 'work to start' })
      .toBe(1);
    const victim = kit.readLedger(ledger)[0]!;
    first.child.kill('SIGKILL');
    await first.exited;
    const diedAt = Date.now();
    await sleep(3_000);
    const second = await kit.startCli('worker', args, env);

    expect(await orchestrator.exited, orchestrator.output()).toBe(0);
    expect(Date.now() - diedAt).toBeLessThan(30_000);

    const runs = kit.readLedger(ledger);
    // The killed worker's module host stopped the module (its host channel, fd 3, closed): 'stopped'.
    expect(runs.map((run) => run.end)).toEqual(['stopped', 'finished']);
    // Run again once the killed process's lease ended: its last heartbeat came at most 0.2 s before the kill.
    expect(runs[1]!.startedAt - diedAt).toBeGreaterThanOrEqual(TIMEOUT_S * 1000 - 1_000);
    expect(runs[0]!.executionId).toBe(victim.executionId);
    kit.expectNoOverlap(runs, new Map([[victim.pid, diedAt]]));
    const result = kit.readReport(report);
    kit.expectAcceptedOnce(result, runs);
    const work = kit.moduleOf(result, 'work');
    expect(work.attempts.map((attempt) => [attempt.workerId, attempt.outcome])).toEqual([
      ['phoenix', 'Lost'],
      ['phoenix', 'Succeeded'],
    ]);
    expect(work.attempts[0]!.error).toMatch(/ECONNREFUSED/);
    // The dead endpoint refused every call while the worker was down: one loss, one quarantine.
    expect(orchestrator.stderr().match(/"msg":"attempt lost"/g)).toHaveLength(1);
    expect(orchestrator.stderr()).toMatch(/"msg":"worker quarantined for this run"/);
    expect(orchestrator.stderr()).toMatch(/worker registered again: its quarantine for this run is over/);
    await kit.stopAll([second]);
    await kit.expectNoModuleProcessLeft(runs);
  }, 60_000);
});
