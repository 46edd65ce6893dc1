/**
 * Issue 10, case 9: modules that crash the process they run in — an unhandled rejection, an
 * uncaught exception, a thrown self-referencing null-prototype object, `process.exit()`, an
 * exhausted heap, a SIGKILL to themselves. Each runs in a module host: it fails alone, with a
 * masked message naming what happened; the worker stays up, runs the next module, and the
 * run's other modules succeed. The `--secret-env` value appears on no output and in no report.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunResult } from '@mpd/orchestrator';
import { cliOf, killLeftovers, spawnProcess, workerArgs } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { readLedger } from '../fixtures/isolation-ledger.js';

const PIPELINE = fileURLToPath(new URL('../fixtures/isolation-crashes.pipeline.ts', import.meta.url));
const SECRET = 'hunter2-isolation-secret';

afterEach(killLeftovers);

/** Each crash module's failure, as the worker words it (masked: `***` for the secret). */
const FAILURES: Record<string, RegExp> = {
  'unhandled-rejection':
    /^Module 'unhandled-rejection' crashed its module host: it left a promise rejection unhandled: Error: rejected with \*\*\*$/,
  'null-prototype': /^Module threw a non-Error value: <ref \*1> \[Object: null prototype\] \{.*secret: '\*\*\*'/,
  'uncaught-exception':
    /^Module 'uncaught-exception' crashed its module host: it threw an uncaught exception: Error: thrown with \*\*\*$/,
  exit: /^Module 'exit' ended abnormally: its module host exited with code 3 while it ran \(process\.exit\(\) in the module\?\); last lines on its stderr: exiting with \*\*\*$/,
  'out-of-memory':
    /^Module 'out-of-memory' ended abnormally: it ran out of memory \(JavaScript heap out of memory; the heap limit is 64 MiB, --module-heap-limit\)/,
  'kill-self': /^Module 'kill-self' ended abnormally: its module host was killed by SIGKILL while it ran/,
};

describe('modules that crash their process (issue 10, case 9)', () => {
  it('each fails alone with a masked message naming what happened; the worker runs the next module; the other modules succeed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpd-isolation-crashes-'));
    const report = join(dir, 'report.json');
    const ledger = join(dir, 'ledger.jsonl');
    // A heartbeat timeout of 30 s: no worker is lost here, and a short lease only ends the crash
    // modules' runs on a loaded machine (a host kills its module when the lease the worker
    // passes on ends unrenewed: with 3 s, the out-of-memory module was killed as its lease ended
    // rather than failing as out of memory, with two suites side by side at load 20-40).
    const orchestrator = spawnProcess({
      script: cliOf('orchestrator'),
      args: [
        ...['--port', '0', '--host', '127.0.0.1', '--heartbeat-interval', '1', '--heartbeat-timeout', '30'],
        ...['--pipeline', PIPELINE, '--report', report, '--secret-env', `SECRET=${SECRET}`],
      ],
      cleanEnv: true,
    });
    const worker = spawnProcess({
      script: cliOf('worker'),
      args: workerArgs(await orchestrator.listeningUrl(), 'crashes', '--pipeline', PIPELINE, '--slots', '2'),
      cleanEnv: true,
      env: { MPD_LEDGER: ledger, MPD_MODULE_HEAP_LIMIT: '64' },
    });
    expect(await orchestrator.exited, orchestrator.output()).toBe(0);

    const result = JSON.parse(readFileSync(report, 'utf8')) as RunResult;
    expect(result.status).toBe('Successful');
    const byName = new Map(result.modules.map((module) => [module.name, module]));
    for (const [name, message] of Object.entries(FAILURES)) {
      const module = byName.get(name)!;
      expect(module.status, name).toBe('IgnoredFailure');
      expect(module.error?.message, name).toMatch(message);
      // It failed where it ran, once: the worker was not lost, nothing ran it again.
      expect(
        module.attempts.map((attempt) => attempt.outcome),
        name,
      ).toEqual(['Failed']);
    }
    for (const name of ['sibling-1', 'sibling-2', 'after']) {
      expect(byName.get(name), name).toMatchObject({ status: 'Successful', workerId: 'crashes' });
    }
    const ledgerEntries = readLedger(ledger);
    const started = ledgerEntries.filter((entry) => entry.event === 'started').map((entry) => entry.module);
    expect(started.sort()).toEqual([...Object.keys(FAILURES), 'after', 'sibling-1', 'sibling-2'].sort());
    // `after` started once every crash had ended.
    const afterStart = ledgerEntries.find((entry) => entry.module === 'after')!.at;
    for (const name of Object.keys(FAILURES))
      expect(Date.parse(byName.get(name)!.endTime!)).toBeLessThanOrEqual(afterStart);

    // The worker is still up, and the secret is nowhere: not in its log lines (the hosts' own
    // stderr included), not in the orchestrator's output, not in the report.
    expect(worker.child.exitCode, worker.output()).toBeNull();
    expect(worker.stderrLogs().filter((line) => line.level === 'fatal')).toEqual([]);
    for (const text of [worker.output(), orchestrator.output(), readFileSync(report, 'utf8')]) {
      expect(text).not.toContain(SECRET);
    }
    expect(worker.output()).toContain('exiting with ***');
    expect((await worker.stop('SIGTERM')).code).toBe(0);
    // 120 s: about ten process starts (the two CLIs, two module hosts, a host again after each
    // of six crashes) and a 64 MiB heap filled; 40 s beside another suite at load 20-23, so
    // about 80 s at load 40 (it ran past 60 s at load 33).
  }, 120_000);
});
