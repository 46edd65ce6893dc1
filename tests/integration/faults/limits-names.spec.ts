/**
 * Issue 10, case 12 (second half), with the CLIs as real processes: a module name the
 * registration schema would refuse is refused where the pipeline is defined, so both CLIs exit
 * at once with the reason (the worker registered, got 400 and retried forever; the orchestrator
 * waited for it forever); a name at the limit runs end to end (registration, execute requests,
 * execution ids).
 */
import { cliOf, killLeftovers, orchestratorArgs, spawnProcess, workerArgs } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import {
  fixture,
  readLedger,
  readReport,
  runFiles,
  runsPerModule,
  startOrchestrator,
  startWorker,
} from './limits-helpers.js';

afterEach(killLeftovers);

const names = fixture('names.pipeline.ts');

describe('limits: module names', () => {
  it('a module name longer than a worker can advertise: both CLIs exit 2 at once, naming the module and the limit', async () => {
    const env = { LIMITS_NAME_LENGTH: '150' };
    const worker = spawnProcess({
      script: cliOf('worker'),
      args: workerArgs('http://127.0.0.1:9', 'w-names', '--pipeline', names),
      cleanEnv: true,
      env,
    });
    const orchestrator = spawnProcess({
      script: cliOf('orchestrator'),
      args: orchestratorArgs('0', '--pipeline', names),
      cleanEnv: true,
      env,
    });
    expect(await worker.exited, worker.output()).toBe(2);
    // "At once": they exit without waiting for anything (a hang meets the test's timeout), not
    // within a wall-clock bound, which process starts on a loaded machine alone can pass.
    expect(await orchestrator.exited, orchestrator.output()).toBe(2);
    const reason = `defineModule: name "a${'.'.repeat(149)}" must be 1-128 characters of letters, digits and . _ : @ / -, starting with a letter or digit (it has 150)`;
    expect(worker.stderr()).toContain(
      'mpd-worker: Invalid setting --pipeline (MPD_PIPELINE): Could not load pipeline file',
    );
    expect(worker.stderr()).toContain(reason);
    expect(orchestrator.stderr()).toContain('Invalid setting --pipeline (MPD_PIPELINE): Could not load pipeline file');
    expect(orchestrator.stderr()).toContain(reason);
  }, 30_000);

  it('module names at the limit (128 characters) register, run and pass their results on', async () => {
    const { report, ledger } = runFiles();
    const orchestrator = await startOrchestrator(names, report);
    // One slot: the two modules are a chain (a worker starts a module host per slot, ~1 s of CPU each).
    await startWorker(orchestrator.url, 'w-names', names, ['--slots', '1'], { LIMITS_LEDGER: ledger });
    expect(await orchestrator.exited, orchestrator.output()).toBe(0);
    const result = readReport(report);
    expect(result.modules.map((module) => [module.name.length, module.status])).toEqual([
      [128, 'Successful'],
      [128, 'Successful'],
    ]);
    // Each module's result is its execution id: `<run id>.<module name>.<attempt>`.
    for (const module of result.modules) expect(module.result).toBe(module.attempts[0]!.executionId);
    expect(Object.values(runsPerModule(readLedger(ledger)))).toEqual([1, 1]);
  }, 60_000);
});
