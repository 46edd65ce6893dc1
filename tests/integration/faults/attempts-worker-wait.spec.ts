/**
 * Issue 10, case 7: no compatible worker must not mean waiting for ever. `--worker-wait` bounds
 * the first wait for `--min-workers` too, and the message names each registered worker and why
 * it does not fit; the first SIGTERM ends the wait with the summary and the report (exit 1).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { killLeftovers, orchestratorArgs, workerArgs } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import * as kit from './attempts-kit.js';

afterEach(killLeftovers);

/**
 * How long the orchestrator waits for a fitting worker (`--worker-wait`, s): long enough for the
 * mismatched worker, started after it, to register on a loaded machine (a suite beside another
 * copy of itself took over 10 s to start one there and the 5 s the test had waited ran out first).
 */
const WAIT_S = 20;

/** An orchestrator of the ledger pipeline waiting {@link WAIT_S} at most, and a worker that loaded another pipeline. */
async function mismatched(report: string) {
  const orchestrator = await kit.startCli(
    'orchestrator',
    orchestratorArgs(
      '0',
      '--pipeline',
      kit.LEDGER_PIPELINE,
      '--report',
      report,
      '--worker-wait',
      String(WAIT_S),
      '--heartbeat-timeout',
      '10',
    ),
  );
  const begun = Date.now();
  const other = await kit.startCli(
    'worker',
    workerArgs(orchestrator.url, 'w-other', '--pipeline', kit.fixture('long.pipeline.ts')),
  );
  return { orchestrator, other, begun };
}

describe('bounded waits (case 7)', () => {
  it('--worker-wait and the only worker loaded another pipeline: exits 1 once the wait is over, naming the worker and why it does not fit', async () => {
    const report = join(kit.tempDir(), 'report.json');
    const { orchestrator, other, begun } = await mismatched(report);

    expect(await orchestrator.exited, orchestrator.output()).toBe(1);
    const took = Date.now() - begun;
    // It waited the whole wait (timed from after its start, so a little less), and then ended: a
    // run that waited for ever would meet the test's timeout.
    expect(took).toBeGreaterThanOrEqual((WAIT_S - 1) * 1_000);
    const stdout = orchestrator.stdout();
    expect(stdout).toContain("[mpd] worker w-other is not used: it loaded pipeline 'long', not 'ledger-attempts'");
    expect(stdout).toContain(
      "[mpd] waited 00:00:20 (--worker-wait) for 1 worker(s) with pipeline 'ledger-attempts': 0 came; not fit: w-other loaded pipeline 'long', not 'ledger-attempts'",
    );
    expect(stdout).toMatch(/Pipeline 'ledger-attempts' Failed/);
    const work = kit.moduleOf(kit.readReport(report), 'work');
    expect(work).toMatchObject({ status: 'Failed', error: { type: 'NoCapableWorker' }, attempts: [] });
    expect(work.error!.message).toContain("w-other loaded pipeline 'long', not 'ledger-attempts'");
    // The wait was the CLI's, before the run: the module itself waited for none.
    expect(work.error!.message).toMatch(
      /^Module 'work' could not be dispatched: no live worker can run it \(it asks for pipeline 'ledger-attempts' \(fingerprint sha256:[0-9a-f]+\)\): w-other loaded pipeline 'long', not 'ledger-attempts'$/,
    );
    expect(kit.moduleOf(kit.readReport(report), 'after').status).toBe('DependencyFailed');
    await kit.stopAll([other]);
  }, 60_000);

  it('SIGTERM while waiting for workers: the wait ends at once with the summary and the report, exit 1', async () => {
    const report = join(kit.tempDir(), 'report.json');
    const { orchestrator, other } = await mismatched(report);
    await expect
      .poll(() => orchestrator.stdout(), {
        timeout: (WAIT_S - 2) * 1_000,
        interval: 20,
        message: 'the worker to be named',
      })
      .toMatch(/worker w-other is not used/);
    const { code } = await orchestrator.stop('SIGTERM');
    expect(code, orchestrator.output()).toBe(1);
    const stdout = orchestrator.stdout();
    // The signal ended the wait, not its running out (which prints "waited … (--worker-wait)").
    expect(stdout).toContain('[mpd] cancelled while waiting for workers');
    expect(stdout).not.toContain('(--worker-wait)');
    expect(stdout).toMatch(/Pipeline 'ledger-attempts' Cancelled/);
    expect(existsSync(report)).toBe(true);
    const result = kit.readReport(report);
    expect(result.status).toBe('Cancelled');
    expect(result.modules.map((module) => [module.name, module.status, module.reason])).toEqual([
      ['work', 'PipelineTerminated', 'not run: the run was cancelled'],
      ['after', 'DependencyFailed', "dependency 'work' ended PipelineTerminated"],
    ]);
    await kit.stopAll([other]);
  }, 60_000);
});
