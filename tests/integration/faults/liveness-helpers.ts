/**
 * What the liveness fault tests share: the ledger the `work` module of
 * `fixtures/liveness.pipeline.ts` keeps, and the CLIs started as real processes.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunResult } from '@mpd/orchestrator';
import { expect } from 'vitest';
import { cliOf, type RunningProcess, spawnProcess, type SpawnOptions } from '@mpd/test-kit';
import type { LedgerRecord } from './fixtures/liveness.pipeline.js';

export type { LedgerRecord };

export const LIVENESS_PIPELINE = fileURLToPath(new URL('./fixtures/liveness.pipeline.ts', import.meta.url));
export const JOIN = 'liveness-join-token-0123456789';

/** A fresh directory for a test's ledger, report and credential files. */
export function scratchDirectory(): { dir: string; ledger: string; report: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mpd-liveness-'));
  return { dir, ledger: join(dir, 'ledger.jsonl'), report: join(dir, 'report.json') };
}

/** The ledger's records, in the order they were written. */
export function readLedger(file: string): LedgerRecord[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as LedgerRecord);
}

/** Each execution's records, by executionId, in ledger order. */
export function executionsIn(ledger: LedgerRecord[]): Map<string, LedgerRecord[]> {
  const executions = new Map<string, LedgerRecord[]>();
  for (const record of ledger) {
    const list = executions.get(record.executionId) ?? [];
    list.push(record);
    executions.set(record.executionId, list);
  }
  return executions;
}

/** Waits until the ledger shows `count` executions (the module started that many times). */
export async function waitForExecutions(
  ledger: string,
  count: number,
  timeoutMs: number,
  message: string,
): Promise<void> {
  await expect
    .poll(() => executionsIn(readLedger(ledger)).size, { timeout: timeoutMs, interval: 50, message })
    .toBe(count);
}

export function readReport(file: string): RunResult {
  return JSON.parse(readFileSync(file, 'utf8')) as RunResult;
}

/** Whether a process with this pid still exists (`/proc`). */
export function processExists(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

/**
 * Starts `mpd-orchestrator` or `mpd-worker` with only `env` for configuration (the join token
 * included) and info logs; `spawn` may run it elsewhere (a network namespace).
 */
export function startCli(
  pkg: 'orchestrator' | 'worker',
  args: string[],
  spawn: (options: SpawnOptions) => RunningProcess = spawnProcess,
): RunningProcess {
  return spawn({
    script: cliOf(pkg),
    args,
    cleanEnv: true,
    env: { MPD_LOG_LEVEL: 'info', MPD_JOIN_TOKEN: JOIN },
  });
}
