/**
 * What the limits fault tests share: the CLIs as real processes, the ledger the fixture modules
 * write, and the peak memory of a process.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunResult } from '@mpd/orchestrator';
import { cliOf, orchestratorArgs, type RunningProcess, spawnProcess, workerArgs } from '@mpd/test-kit';
import { expect } from 'vitest';

export const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

/** A fresh directory with the paths of a run's report and ledger. */
export function runFiles(): { dir: string; report: string; ledger: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mpd-limits-'));
  return { dir, report: join(dir, 'report.json'), ledger: join(dir, 'ledger.log') };
}

/** A CLI as a real process, configured by `args` and `env` only, once it listens. */
async function startCli(
  pkg: 'orchestrator' | 'worker',
  args: string[],
  env: Record<string, string>,
): Promise<RunningProcess & { url: string }> {
  const proc = spawnProcess({ script: cliOf(pkg), args, cleanEnv: true, env: { MPD_LOG_LEVEL: 'info', ...env } });
  return { ...proc, url: await proc.listeningUrl() };
}

/**
 * The orchestrator CLI running `pipeline` on the first worker that registers, writing `report`.
 * Its heartbeat timeout is 20 s, not test-kit's 3 s: these tests move results of tens of MB, and
 * on a loaded machine (load 9–23, round K) a worker busy with one missed 3 s of heartbeats, its
 * lease ended and the module ran twice; none of these tests is about liveness.
 */
export function startOrchestrator(
  pipeline: string,
  report: string,
  extra: string[] = [],
  env: Record<string, string> = {},
): Promise<RunningProcess & { url: string }> {
  const args = orchestratorArgs('0', '--pipeline', pipeline, '--min-workers', '1', '--report', report);
  args.push('--heartbeat-timeout', '20', ...extra);
  return startCli('orchestrator', args, env);
}

/** A worker CLI with `pipeline`, registering with `orchestratorUrl` as `id`. */
export function startWorker(
  orchestratorUrl: string,
  id: string,
  pipeline: string,
  extra: string[] = [],
  env: Record<string, string> = {},
): Promise<RunningProcess & { url: string }> {
  return startCli('worker', workerArgs(orchestratorUrl, id, '--pipeline', pipeline, ...extra), env);
}

export function readReport(report: string): RunResult {
  return JSON.parse(readFileSync(report, 'utf8')) as RunResult;
}

/** One line of a fixture's ledger: `started|finished <module> <executionId> <pid> <ms>`. */
export interface LedgerEntry {
  event: 'started' | 'finished';
  module: string;
  executionId: string;
  pid: number;
  ms: number;
}

export function readLedger(file: string): LedgerEntry[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [event, module, executionId, pid, ms] = line.split(' ');
      return {
        event: event as LedgerEntry['event'],
        module: module!,
        executionId: executionId!,
        pid: Number(pid),
        ms: Number(ms),
      };
    });
}

/**
 * From the ledger: how many times each module ran, checking that no two runs of a module
 * overlapped (each start is followed by its own finish before the next start).
 */
export function runsPerModule(entries: readonly LedgerEntry[]): Record<string, number> {
  const runs: Record<string, number> = {};
  const open = new Map<string, string>();
  for (const entry of entries) {
    if (entry.event === 'started') {
      expect(open.get(entry.module), `${entry.module} started while ${open.get(entry.module)} ran`).toBeUndefined();
      open.set(entry.module, entry.executionId);
      runs[entry.module] = (runs[entry.module] ?? 0) + 1;
    } else {
      expect(open.get(entry.module), `${entry.module} finished without starting`).toBe(entry.executionId);
      open.delete(entry.module);
    }
  }
  expect([...open.keys()], 'modules that never finished').toEqual([]);
  return runs;
}

/**
 * Watches the peak resident memory of process `pid` (`VmHWM` of /proc/<pid>/status, a high-water
 * mark) until `stop()`: the last value read, in bytes.
 */
export function watchPeakMemory(pid: number): { stop(): number } {
  let peak = 0;
  const read = (): void => {
    try {
      const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match) peak = Math.max(peak, Number(match[1]) * 1024);
    } catch {
      // The process has exited: its last reading stands.
    }
  };
  read();
  const timer = setInterval(read, 25);
  return {
    stop: () => {
      clearInterval(timer);
      read();
      return peak;
    },
  };
}
