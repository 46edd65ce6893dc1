/**
 * Issue 10, case 10: a module runs `bash -c 'trap "" TERM; sleep 120'` (child and grandchild
 * ignore SIGTERM), through `ctx.exec` and through plain `execFile(…, { signal: ctx.signal })`.
 * On timeout, on cancel and on worker stop, the worker stops the module's process group
 * (SIGTERM, SIGKILL after `--kill-grace`): its slot frees only once the group is gone, the
 * always-run cleanup never starts beside a live process of it, and none of its processes is
 * left (checked in `/proc` for the pids written to the ledger). A worker killed with SIGKILL
 * leaves none behind either: its module hosts stop their groups themselves.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { RunResult } from '@mpd/orchestrator';
import { cliOf, killLeftovers, type RunningProcess, spawnProcess, workerArgs } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { isRunning, type LedgerEntry, readLedger } from '../fixtures/isolation-ledger.js';

const PIPELINE = fileURLToPath(new URL('../fixtures/isolation-process-tree.pipeline.ts', import.meta.url));
const KILL_GRACE_MS = 1_500;
const VIAS = ['exec', 'execFile'] as const;
type Via = (typeof VIAS)[number];

afterEach(killLeftovers);

/**
 * A pipeline run with the stubborn module on its workers (one per `workerCount`), each with
 * `slots` slots: 2 where the cleanup could start beside stubborn on its worker were the slot or
 * the answer freed early (a worker starts a module host per slot, about a second of CPU each:
 * 1 where the cleanup runs on another worker or not at all).
 */
async function startRun(
  via: Via,
  { workerCount = 1, slots = 2, timeoutMs = 120_000, orchestratorFlags = [] as string[] } = {},
) {
  const dir = mkdtempSync(join(tmpdir(), `mpd-isolation-tree-${via}-`));
  const report = join(dir, 'report.json');
  const ledger = join(dir, 'ledger.jsonl');
  const env = { MPD_VIA: via, MPD_STUBBORN_TIMEOUT_MS: String(timeoutMs), MPD_LEDGER: ledger };
  const orchestrator = spawnProcess({
    script: cliOf('orchestrator'),
    args: [
      ...['--port', '0', '--host', '127.0.0.1', '--heartbeat-interval', '1', '--heartbeat-timeout', '10'],
      ...['--pipeline', PIPELINE, '--report', report, '--min-workers', String(workerCount)],
      ...orchestratorFlags,
    ],
    cleanEnv: true,
    env,
  });
  const url = await orchestrator.listeningUrl();
  // The workers start together (a process start is seconds on a loaded machine).
  const started = Array.from({ length: workerCount }, (_, index) => {
    const id = `tree-${via}-${index + 1}`;
    const worker = spawnProcess({
      script: cliOf('worker'),
      args: workerArgs(
        url,
        id,
        ...['--pipeline', PIPELINE, '--slots', String(slots), '--kill-grace', String(KILL_GRACE_MS / 1_000)],
      ),
      cleanEnv: true,
      env,
    });
    return worker.listeningUrl().then((workerUrl) => [id, { ...worker, url: workerUrl }] as const);
  });
  const workers = new Map<string, RunningProcess & { url: string }>(await Promise.all(started));
  /** Once bash wrote them: the stubborn module's host, bash and sleep, and the worker running them. */
  const stubborn = async () => {
    let entries: LedgerEntry[] = [];
    await expect
      .poll(() => (entries = readLedger(ledger)).some((entry) => entry.event === 'pids'), {
        timeout: 20_000,
        interval: 50,
        message: `stubborn (${via}) to start its processes`,
      })
      .toBe(true);
    const started = entries.find((entry) => entry.event === 'started')!;
    const pids = [started.pid, ...entries.find((entry) => entry.event === 'pids')!.pids!];
    return { pids, worker: workers.get(started.workerId!)!, startedAt: started.at };
  };
  return {
    orchestrator,
    workers,
    stubborn,
    ledger: () => readLedger(ledger),
    report: () => JSON.parse(readFileSync(report, 'utf8')) as RunResult,
  };
}

/**
 * Samples the worker's load (GET /api/health) and then whether any of `pids` runs, every 50 ms,
 * until `until` settles; returns the samples where the slot was free (load 0) while one still ran.
 */
async function freedEarly(worker: { url: string }, pids: number[], until: Promise<unknown>): Promise<string[]> {
  const violations: string[] = [];
  let done = false;
  void until.finally(() => (done = true));
  while (!done) {
    let load: number | undefined;
    try {
      const health = (await (await fetch(`${worker.url}/api/health`)).json()) as { currentLoad: number };
      load = health.currentLoad;
    } catch {
      load = undefined; // the worker stopped listening
    }
    // Read after the load: a process that ran then ran before it too.
    const alive = pids.filter(isRunning);
    if (load === 0 && alive.length > 0) violations.push(`load 0 while ${alive.join(', ')} ran`);
    await sleep(50);
  }
  return violations;
}

/** What every scenario asserts once the run is over: one run of stubborn, a cleanup that saw none of its processes, none left. */
function expectNothingLeft(run: Awaited<ReturnType<typeof startRun>>, pids: number[]): void {
  const entries = run.ledger();
  expect(entries.filter((entry) => entry.event === 'started').length).toBe(1);
  expect(entries.filter((entry) => entry.event === 'finished')).toEqual([]);
  const cleanup = entries.find((entry) => entry.event === 'cleanup')!;
  expect(cleanup, 'the always-run cleanup ran').toBeDefined();
  expect(cleanup.pids!.sort()).toEqual([...pids].sort());
  expect(cleanup.alive, 'processes of stubborn still running when cleanup started').toEqual([]);
  expect(pids.filter(isRunning)).toEqual([]);
}

describe("a module's process tree (issue 10, case 10)", () => {
  it.each(VIAS)(
    'on timeout (%s): the TimedOut answer and the free slot come once SIGKILL ended the group; cleanup runs after',
    async (via) => {
      const run = await startRun(via, { timeoutMs: 3_000 });
      const { pids, worker } = await run.stubborn();
      const violations = freedEarly(worker, pids, run.orchestrator.exited);
      expect(await run.orchestrator.exited, run.orchestrator.output()).toBe(1);
      expect(await violations).toEqual([]);
      const stubborn = run.report().modules.find((module) => module.name === 'stubborn')!;
      expect(stubborn.status).toBe('TimedOut');
      expect(stubborn.attempts.map((attempt) => attempt.outcome)).toEqual(['TimedOut']);
      // Answered after the timeout and the kill grace: bash and sleep ignored SIGTERM.
      const attempt = stubborn.attempts[0]!;
      expect(Date.parse(attempt.endTime!) - Date.parse(attempt.startTime)).toBeGreaterThanOrEqual(
        3_000 + KILL_GRACE_MS,
      );
      expect(run.report().modules.find((module) => module.name === 'cleanup')!.status).toBe('Successful');
      expectNothingLeft(run, pids);
      expect(worker.output()).toMatch(/still running after the kill grace: sent SIGKILL/);
    },
    60_000,
  );

  it.each(VIAS)(
    'on cancel (%s, the orchestrator gets SIGTERM): the Cancelled answer and the free slot come once the group is gone; cleanup runs after',
    async (via) => {
      const run = await startRun(via);
      const { pids, worker } = await run.stubborn();
      const violations = freedEarly(worker, pids, run.orchestrator.exited);
      run.orchestrator.child.kill('SIGTERM');
      expect(await run.orchestrator.exited, run.orchestrator.output()).toBe(1);
      expect(await violations).toEqual([]);
      const result = run.report();
      expect(result.status).toBe('Cancelled');
      const stubborn = result.modules.find((module) => module.name === 'stubborn')!;
      expect(stubborn.attempts.map((attempt) => attempt.outcome)).toEqual(['Cancelled']);
      expect(result.modules.find((module) => module.name === 'cleanup')!.status).toBe('Successful');
      expectNothingLeft(run, pids);
    },
    60_000,
  );

  it.each(VIAS)(
    'on worker stop (%s, SIGTERM twice: drain, then cancel): the worker exits once the group is gone; cleanup runs on the other worker after',
    async (via) => {
      // A module its worker cancels on the way out is a lost attempt (not the module's failure):
      // with no lost attempt allowed, stubborn ends WorkerLost instead of running again.
      // One slot each: the stopping worker takes no cleanup, which runs on the other one.
      const run = await startRun(via, { workerCount: 2, slots: 1, orchestratorFlags: ['--max-lost-attempts', '0'] });
      const { pids, worker } = await run.stubborn();
      const violations = freedEarly(worker, pids, worker.exited);
      worker.child.kill('SIGTERM'); // drains: the module would run on
      await expect
        .poll(() => worker.output(), { timeout: 10_000, message: 'the worker to start draining' })
        .toMatch(/draining/);
      const stopped = performance.now();
      worker.child.kill('SIGTERM'); // cancels what runs
      expect(await worker.exited, worker.output()).toBe(130);
      expect(performance.now() - stopped).toBeGreaterThanOrEqual(KILL_GRACE_MS - 100);
      expect(pids.filter(isRunning)).toEqual([]);
      expect(await violations).toEqual([]);
      expect(await run.orchestrator.exited, run.orchestrator.output()).toBe(1);
      const result = run.report();
      const stubborn = result.modules.find((module) => module.name === 'stubborn')!;
      expect(stubborn.attempts.map((attempt) => attempt.outcome)).toEqual(['Lost']);
      expect(stubborn.attempts[0]!.error).toMatch(/the worker cancelled it itself: .*worker shutting down/);
      expect(stubborn.error?.type).toBe('WorkerLost');
      const cleanup = result.modules.find((module) => module.name === 'cleanup')!;
      expect(cleanup.status).toBe('Successful');
      expect(cleanup.workerId).not.toBe(run.ledger().find((entry) => entry.event === 'started')!.workerId);
      expectNothingLeft(run, pids);
    },
    60_000,
  );

  it.each(VIAS)(
    'a worker killed with SIGKILL (%s): its module host stops the group itself, SIGKILL after the grace; nothing is left',
    async (via) => {
      const run = await startRun(via, { slots: 1 }); // no cleanup runs: the orchestrator is killed after
      const { pids, worker } = await run.stubborn();
      const killed = performance.now();
      worker.child.kill('SIGKILL');
      await expect
        .poll(() => pids.filter(isRunning), {
          timeout: KILL_GRACE_MS + 5_000,
          interval: 50,
          message: 'every process of the module to end',
        })
        .toEqual([]);
      // bash and sleep ignored SIGTERM: they ended with the SIGKILL after the grace.
      expect(performance.now() - killed).toBeGreaterThanOrEqual(KILL_GRACE_MS - 100);
      run.orchestrator.child.kill('SIGKILL');
    },
    60_000,
  );
});
