/**
 * Issue 10, case 6: a worker replaced under its id. A worker frozen (SIGSTOP) mid-module is
 * replaced by a new process with the same `--id` and `--credential-file`: the orchestrator gives
 * the frozen process's module up at once and runs it on the new one; once thawed, the old process
 * hears 409 WorkerReplaced at its first heartbeat, cancels its module and exits 3, without
 * unregistering its successor. Real processes; the module keeps a ledger.
 */
import { join } from 'node:path';
import { killLeftovers, type RunningProcess } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import {
  executionsIn,
  LIVENESS_PIPELINE,
  processExists,
  readLedger,
  readReport,
  scratchDirectory,
  startCli,
  waitForExecutions,
} from './liveness-helpers.js';

afterEach(killLeftovers);

/** The heartbeat timeout: long, so that only the replacement can make the orchestrator give the module up. */
const TIMEOUT_S = 30;
/** How long the module runs: still running when the frozen process is thawed. */
const WORK_MS = 20_000;
/**
 * How long a thawed, replaced process may go on running its module: until its first heartbeat
 * after the thaw is answered 409 (the heartbeat interval is 1 s), with room for a loaded machine.
 */
const STOP_WINDOW_MS = 5_000;

describe('a worker replaced under its id (case 6)', () => {
  it('re-dispatches the frozen process’s module at once; thawed, the old process cancels it and exits 3', async () => {
    const { dir, ledger, report } = scratchDirectory();
    const orchestrator = startCli('orchestrator', [
      ...['--port', '0', '--host', '127.0.0.1', '--heartbeat-interval', '1', '--heartbeat-timeout', String(TIMEOUT_S)],
      ...['--pipeline', LIVENESS_PIPELINE, '--report', report],
      ...['--env', `LEDGER=${ledger}`, '--env', `WORK_MS=${WORK_MS}`],
    ]);
    const url = await orchestrator.listeningUrl();
    const workerArgs = [
      ...['--port', '0', '--host', '127.0.0.1', '--orchestrator', url, '--id', 'liveness-6'],
      ...['--credential-file', join(dir, 'credential'), '--pipeline', LIVENESS_PIPELINE, '--slots', '1'],
    ];
    const old = startCli('worker', workerArgs);
    await old.listeningUrl();
    await expect
      .poll(() => readLedger(ledger).some((record) => record.event === 'started'), {
        timeout: 20_000,
        interval: 50,
        message: 'the module to start on the first process',
      })
      .toBe(true);
    old.child.kill('SIGSTOP');
    const frozenAt = Date.now();

    const replacement: RunningProcess = startCli('worker', workerArgs);
    await replacement.listeningUrl();
    const replacementUp = Date.now();
    await waitForExecutions(ledger, 2, 10_000, 'the module to run again on the replacement');
    const redispatchMs = Date.now() - replacementUp;

    // Thawed: its first heartbeat answers 409 WorkerReplaced.
    // Read before the signal: once thawed, the old process may write its ledger before this one
    // reads the clock again.
    const thawingAt = Date.now();
    old.child.kill('SIGCONT');
    const thawedAt = Date.now();
    expect(await old.exited, old.output()).toBe(3);
    expect(old.stderr()).toMatch(/mpd-worker: another process registered as worker 'liveness-6'/);
    expect(await orchestrator.exited, orchestrator.output()).toBe(0);
    expect(replacement.child.exitCode).toBeNull(); // the old process did not unregister or drain it
    await replacement.stop('SIGTERM');

    const executions = executionsIn(readLedger(ledger));
    const [oldRun, newRun] = [...executions.values()];
    expect(oldRun![0]!.pid).toBe(old.child.pid);
    expect(newRun![0]!.pid).toBe(replacement.child.pid);
    // Re-dispatched at once: well before the heartbeat timeout (and far before timeout + margin).
    expect(redispatchMs).toBeLessThan(10_000);
    expect(newRun![0]!.at - frozenAt).toBeLessThan(TIMEOUT_S * 1000);
    // Never two running at once: the old run recorded nothing while frozen, and after the thaw only
    // until its cancel, within the stop window; it never finished. The cancel is whichever the
    // thawed process reads first: the orchestrator's cancel call (sent at the replacement, waiting
    // in its socket), or its own on the 409 to its heartbeat.
    const oldLast = oldRun!.at(-1)!;
    expect(oldLast).toMatchObject({
      event: 'cancelled',
      reason: expect.stringMatching(/attempt declared lost|worker replaced/),
    });
    expect(oldRun!.filter((record) => record.at > frozenAt + 500 && record.at < thawingAt)).toEqual([]);
    expect(oldLast.at - thawedAt).toBeLessThan(STOP_WINDOW_MS);
    expect(oldRun!.some((record) => record.event === 'finished')).toBe(false);
    expect(newRun!.at(-1)!.event).toBe('finished');

    // Exactly one accepted result: the replacement's; one replacement is one loss.
    const work = readReport(report).modules.find((module) => module.name === 'work')!;
    expect(work).toMatchObject({ status: 'Successful', workerId: 'liveness-6', result: 'liveness-6' });
    expect(work.attempts.map((attempt) => attempt.outcome)).toEqual(['Lost', 'Succeeded']);
    expect(work.attempts[0]!.error).toMatch(/replaced by a new process/);
    expect(work.attempts[1]!.executionId).toBe(newRun![0]!.executionId);
    expect(processExists(old.child.pid!)).toBe(false);
  }, 90_000);
});
