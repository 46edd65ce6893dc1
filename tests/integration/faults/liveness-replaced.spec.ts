/**
 * Issue 10, case 6: a worker replaced under its id. A worker frozen (SIGSTOP) mid-module is
 * replaced by a new process with the same `--id` and `--credential-file`: the orchestrator
 * declares the frozen process's attempt lost at once, and runs the module on the new process once
 * the old process's heartbeat lease has ended (not after timeout + margin): the frozen worker's
 * module host, which SIGSTOP did not freeze, kills its process group when that lease ends, so the
 * two runs never overlap. Once thawed, the old process hears 409 WorkerReplaced at its first
 * heartbeat and exits 3, without unregistering its successor. Real processes; the module keeps
 * a ledger (a tick every 200 ms).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
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
  startGate,
  type Gate,
  waitForExecutions,
} from './liveness-helpers.js';

let gate: Gate | undefined;
afterEach(async () => {
  killLeftovers();
  await gate?.close();
  gate = undefined;
});

/** The heartbeat timeout (s): the old process's lease ends at most this long after its freeze. */
const TIMEOUT_S = 8;
/** The heartbeat interval (s). */
const INTERVAL_S = 1;
/**
 * How long the module runs at most (ms): the frozen process's run would still be going when its
 * lease ends. The replacement's run ends sooner, when the test writes the run's `DONE_FILE`.
 */
const WORK_MS = 60_000;

describe('a worker replaced under its id (case 6)', () => {
  it('runs the frozen process’s module again once its lease has ended, never beside it; thawed, the old process exits 3', async () => {
    const { dir, ledger, report } = scratchDirectory();
    const doneFile = join(dir, 'done');
    const orchestrator = startCli('orchestrator', [
      ...[
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--heartbeat-interval',
        String(INTERVAL_S),
        '--heartbeat-timeout',
        String(TIMEOUT_S),
      ],
      ...['--pipeline', LIVENESS_PIPELINE, '--report', report],
      ...['--env', `LEDGER=${ledger}`, '--env', `WORK_MS=${WORK_MS}`, '--env', `DONE_FILE=${doneFile}`],
    ]);
    const url = await orchestrator.listeningUrl();
    const credentialFile = join(dir, 'credential');
    const workerArgs = (orchestratorUrl: string) => [
      ...['--port', '0', '--host', '127.0.0.1', '--orchestrator', orchestratorUrl, '--id', 'liveness-6'],
      ...['--credential-file', credentialFile, '--pipeline', LIVENESS_PIPELINE, '--slots', '1'],
    ];
    const old = startCli('worker', workerArgs(url));
    await old.listeningUrl();
    await expect
      .poll(() => readLedger(ledger).some((record) => record.event === 'started'), {
        timeout: 20_000,
        interval: 50,
        message: 'the module to start on the first process',
      })
      .toBe(true);
    // Frozen once it has taken in its registration's answer (its credential, its heartbeats
    // begun): the orchestrator dispatches as soon as it accepted the registration, so the module
    // can start before the worker has read that answer, and a process frozen then is another case.
    await expect
      .poll(() => old.output().includes('"msg":"registered with the orchestrator"'), {
        timeout: 20_000,
        interval: 50,
        message: 'the first process to have read its registration answer',
      })
      .toBe(true);
    // And has kept that credential in its file (written in the background after the registration):
    // the replacement presents it, and takes the id at once.
    await expect
      .poll(() => existsSync(credentialFile) && readFileSync(credentialFile, 'utf8').trim() !== '', {
        timeout: 20_000,
        interval: 50,
        message: 'the first process to have written its credential file',
      })
      .toBe(true);
    // The replacement started before the freeze (it reads the credential file at its start),
    // its calls held at a gate until then: started after the freeze, its start (seconds on a
    // loaded machine) outlasted the old process's lease, which then ended by missed heartbeats
    // before any replacement registered (another case).
    gate = await startGate(url);
    const replacement: RunningProcess = startCli('worker', workerArgs(gate.url));
    await replacement.listeningUrl();
    old.child.kill('SIGSTOP');
    const frozenAt = Date.now();
    gate.open();
    await waitForExecutions(ledger, 2, (TIMEOUT_S + 15) * 1000, 'the module to run again on the replacement');
    // The replacement's run may end now (the old one was killed when its lease ended, or the
    // ledger shows otherwise below).
    writeFileSync(doneFile, '');

    // Thawed: its first heartbeat answers 409 WorkerReplaced.
    old.child.kill('SIGCONT');
    expect(await old.exited, old.output()).toBe(3);
    expect(old.stderr()).toMatch(/mpd-worker: another process registered as worker 'liveness-6'/);
    expect(await orchestrator.exited, orchestrator.output()).toBe(0);
    expect(replacement.child.exitCode).toBeNull(); // the old process did not unregister or drain it
    await replacement.stop('SIGTERM');
    expect(orchestrator.stderr()).toMatch(
      /the replaced process's attempts run again once its heartbeat lease has ended/,
    );

    const executions = executionsIn(readLedger(ledger));
    expect(executions.size).toBe(2);
    const [oldRun, newRun] = [...executions.values()];
    const newStart = newRun![0]!.at;
    // Run again once the old lease ended (its last heartbeat came at most an interval before the
    // freeze), and long before timeout + margin.
    expect(newStart - frozenAt).toBeGreaterThanOrEqual((TIMEOUT_S - INTERVAL_S) * 1000 - 500);
    expect(newStart - frozenAt).toBeLessThan((TIMEOUT_S + 10) * 1000);
    // Never two running at once: the old run (in its module host, which SIGSTOP did not freeze)
    // recorded nothing once the new one started, and never finished: its host killed it when the
    // lease ended.
    expect(oldRun!.filter((record) => record.at >= newStart)).toEqual([]);
    expect(oldRun!.some((record) => record.event === 'finished')).toBe(false);
    expect(newRun!.at(-1)!.event).toBe('finished');
    expect(newRun![0]!.pid).not.toBe(oldRun![0]!.pid);
    expect(processExists(oldRun![0]!.pid)).toBe(false);

    // Exactly one accepted result: the replacement's; one replacement is one loss.
    const work = readReport(report).modules.find((module) => module.name === 'work')!;
    expect(work).toMatchObject({ status: 'Successful', workerId: 'liveness-6', result: 'liveness-6' });
    expect(work.attempts.map((attempt) => attempt.outcome)).toEqual(['Lost', 'Succeeded']);
    expect(work.attempts[0]!.error).toMatch(/replaced by a new process/);
    expect(work.attempts[1]!.executionId).toBe(newRun![0]!.executionId);
    expect(processExists(old.child.pid!)).toBe(false);
  }, 90_000);
});
