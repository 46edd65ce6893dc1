/**
 * What the liveness fault tests share: the ledger the `work` module of
 * `fixtures/liveness.pipeline.ts` keeps, and the CLIs started as real processes.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
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

/** A door on 127.0.0.1 to an HTTP server, shut until a test opens it (see {@link startGate}). */
export interface Gate {
  /** `http://127.0.0.1:<port>`: give it to a process in place of the server's URL. */
  url: string;
  /** Lets every connection through to the server: those waiting (their bytes as they came), and any later one at once. */
  open(): void;
  /** Closes the door and every connection through it. */
  close(): Promise<void>;
}

/**
 * Starts a {@link Gate} to `target` (`http://host:port`): a TCP door that accepts connections
 * and holds their bytes until {@link Gate.open}, then joins each to a connection of its own to
 * `target`. A process started early, whose first call must not arrive before a moment the test
 * chooses (a replacement worker's registration, started before the freeze it follows, as a
 * process start takes seconds on a loaded machine).
 */
export async function startGate(target: string): Promise<Gate> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const waiting: Socket[] = [];
  let opened = false;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const join = (socket: Socket) => {
    const upstream = connect(Number(port), hostname);
    track(upstream);
    upstream.on('close', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
    socket.pipe(upstream);
    upstream.pipe(socket);
  };
  const server = createServer((socket) => {
    track(socket);
    if (opened) return join(socket);
    socket.pause();
    waiting.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    open() {
      opened = true;
      for (const socket of waiting.splice(0)) if (!socket.destroyed) join(socket);
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
