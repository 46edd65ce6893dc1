/**
 * What the attempts-*.spec.ts fault tests share: the ledger fixture pipeline, starting the CLIs,
 * and the checks every such test makes (no two runs of a module at once, one accepted result,
 * no module process left).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModuleRunResult, RunResult } from '@mpd/orchestrator';
import { cliOf, type RunningProcess, spawnProcess } from '@mpd/test-kit';
import { expect } from 'vitest';

/** The pipeline whose `work` module writes the ledger (see the fixture). */
export const LEDGER_PIPELINE = fileURLToPath(new URL('../fixtures/ledger-attempts.pipeline.ts', import.meta.url));

/** A pipeline file by name, from the fixtures. */
export const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

export const JOIN = 'attempts-join-token-0123456789';

/** A fresh directory for a test's ledger, report and credential files. */
export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'mpd-attempts-'));
}

/** A CLI process started with the join token in its environment, once it listens (`url`). */
export type Started = RunningProcess & { url: string };

export async function startCli(
  pkg: 'orchestrator' | 'worker',
  args: string[],
  env: Record<string, string> = {},
): Promise<Started> {
  const proc = spawnProcess({ script: cliOf(pkg), args, env: { MPD_LOG_LEVEL: 'info', MPD_JOIN_TOKEN: JOIN, ...env } });
  return { ...proc, url: await proc.listeningUrl() };
}

/** One run of a module as its ledger tells it. */
export interface LedgerRun {
  executionId: string;
  pid: number;
  startedAt: number;
  /** When it finished or stopped (epoch ms); undefined while it runs, or when its process died. */
  endedAt: number | undefined;
  end: 'finished' | 'stopped' | undefined;
}

/** The runs a ledger file records, in the order they started (none when the file does not exist). */
export function readLedger(file: string): LedgerRun[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const runs = new Map<string, LedgerRun>();
  for (const line of text.trim().split('\n').filter(Boolean)) {
    const [event, executionId, pid, at] = line.split(' ') as [string, string, string, string];
    if (event === 'started') {
      runs.set(executionId, {
        executionId,
        pid: Number(pid),
        startedAt: Number(at),
        endedAt: undefined,
        end: undefined,
      });
    } else {
      const run = runs.get(executionId)!;
      run.endedAt = Number(at);
      run.end = event as 'finished' | 'stopped';
    }
  }
  return [...runs.values()].sort((a, b) => a.startedAt - b.startedAt);
}

/**
 * No two runs overlapped: each ended (or its process died: `deaths`, pid → epoch ms) before the
 * next one started. A run with neither an end nor a death lasts for ever.
 */
export function expectNoOverlap(runs: readonly LedgerRun[], deaths: ReadonlyMap<number, number> = new Map()): void {
  for (let i = 0; i < runs.length; i++) {
    for (let j = i + 1; j < runs.length; j++) {
      const [first, second] = [runs[i]!, runs[j]!];
      const firstEnd = first.endedAt ?? deaths.get(first.pid) ?? Number.POSITIVE_INFINITY;
      expect(firstEnd, `${first.executionId} still ran when ${second.executionId} started`).toBeLessThanOrEqual(
        second.startedAt,
      );
    }
  }
}

/** Every process that ran a module is gone (checked until `timeoutMs`): nothing a module started outlived the test's processes. */
export async function expectNoModuleProcessLeft(runs: readonly LedgerRun[], timeoutMs = 10_000): Promise<void> {
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const pids = [...new Set(runs.map((run) => run.pid))];
  await expect
    .poll(() => pids.filter(alive), { timeout: timeoutMs, interval: 100, message: 'module processes left' })
    .toEqual([]);
}

export function readReport(file: string): RunResult {
  return JSON.parse(readFileSync(file, 'utf8')) as RunResult;
}

export function moduleOf(result: RunResult, name: string): ModuleRunResult {
  const module = result.modules.find((candidate) => candidate.name === name);
  if (!module) throw new Error(`no module '${name}' in the report`);
  return module;
}

/**
 * `work` ended Successful with exactly one attempt accepted (`Succeeded`), the result of a run
 * the ledger shows finished, and `after` got that same result.
 */
export function expectAcceptedOnce(result: RunResult, runs: readonly LedgerRun[]): void {
  const work = moduleOf(result, 'work');
  expect(work.status).toBe('Successful');
  const accepted = work.attempts.filter((attempt) => attempt.outcome === 'Succeeded');
  expect(accepted, JSON.stringify(work.attempts)).toHaveLength(1);
  const value = work.result as { executionId: string; workerId: string };
  expect(value.executionId).toBe(accepted[0]!.executionId);
  expect(work.workerId).toBe(accepted[0]!.workerId);
  expect(runs.find((run) => run.executionId === value.executionId)?.end).toBe('finished');
  expect(moduleOf(result, 'after')).toMatchObject({ status: 'Successful', result: value });
}

/** Stops every process given (SIGTERM, SIGKILL after 5 s) and waits for their exits. */
export async function stopAll(processes: readonly (RunningProcess | undefined)[]): Promise<void> {
  await Promise.all(
    processes.map((proc) =>
      proc && proc.child.exitCode === null && proc.child.signalCode === null ? proc.stop('SIGTERM', 5_000) : undefined,
    ),
  );
}
