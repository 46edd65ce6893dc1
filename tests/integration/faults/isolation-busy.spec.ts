/**
 * Issue 10, case 2: a module that blocks its event loop (`execSync('sleep 6')`) with short
 * heartbeats (H=1 s, T=3 s) on two workers. It runs in a module host, so the worker's event
 * loop goes on serving and heartbeating: the module runs once, and the run succeeds.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunResult } from '@mpd/orchestrator';
import { cliOf, killLeftovers, spawnProcess, workerArgs } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { readLedger } from '../fixtures/isolation-ledger.js';

const PIPELINE = fileURLToPath(new URL('../fixtures/isolation-busy.pipeline.ts', import.meta.url));

afterEach(killLeftovers);

describe('a module that blocks its event loop (issue 10, case 2)', () => {
  it('execSync("sleep 6") with H=1 T=3 on two workers: heartbeats keep flowing, the module runs once, the run succeeds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpd-isolation-busy-'));
    const report = join(dir, 'report.json');
    const ledger = join(dir, 'ledger.jsonl');
    const started = Date.now();
    const orchestrator = spawnProcess({
      script: cliOf('orchestrator'),
      args: [
        ...['--port', '0', '--host', '127.0.0.1', '--heartbeat-interval', '1', '--heartbeat-timeout', '3'],
        ...['--pipeline', PIPELINE, '--min-workers', '2', '--report', report],
      ],
      cleanEnv: true,
    });
    const url = await orchestrator.listeningUrl();
    const workers = ['busy-1', 'busy-2'].map((id) =>
      spawnProcess({
        script: cliOf('worker'),
        args: workerArgs(url, id, '--pipeline', PIPELINE, '--slots', '2'),
        cleanEnv: true,
        env: { MPD_LEDGER: ledger },
      }),
    );
    expect(await orchestrator.exited, orchestrator.output()).toBe(0);
    const elapsed = Date.now() - started;

    const result = JSON.parse(readFileSync(report, 'utf8')) as RunResult;
    expect(result.status).toBe('Successful');
    const busy = result.modules.find((module) => module.name === 'busy')!;
    // One attempt, never declared lost: the worker's heartbeats went on while the module blocked.
    expect(busy.attempts.map((attempt) => attempt.outcome)).toEqual(['Succeeded']);
    expect(result.modules.find((module) => module.name === 'after')).toMatchObject({ status: 'Successful' });

    const entries = readLedger(ledger).filter((entry) => entry.module === 'busy');
    expect(entries.map((entry) => entry.event)).toEqual(['started', 'finished']);
    expect(entries[0]!.executionId).toBe(busy.attempts[0]!.executionId);
    expect(entries[1]!.at - entries[0]!.at).toBeGreaterThanOrEqual(6_000);
    expect(orchestrator.output()).not.toMatch(/lost|Offline/i);
    // No heartbeat failed while the run went on (one may, once the orchestrator stops listening).
    const runEndedAt = Date.parse(result.endTime);
    for (const worker of workers) {
      expect(worker.child.exitCode, worker.output()).toBeNull();
      const failedHeartbeats = worker
        .stderr()
        .split('\n')
        .filter((line) => line.includes('heartbeat failed'))
        .filter((line) => (JSON.parse(line) as { time: number }).time <= runEndedAt);
      expect(failedHeartbeats).toEqual([]);
      await worker.stop('SIGTERM');
    }
    expect(elapsed).toBeLessThan(30_000);
  }, 60_000);
});
