/**
 * Issue 10, case 10: a module runs `bash -c 'trap "" TERM; sleep 120'` (child and grandchild
 * ignore SIGTERM), through `ctx.exec` and through plain `execFile(…, { signal: ctx.signal })`:
 * two modules, side by side in one run per scenario. On timeout, on cancel and on worker stop,
 * the worker stops each module's process group (SIGTERM, SIGKILL after `--kill-grace`): its slot
 * frees only once the group is gone, the
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
import { stubbornModule, VIAS } from '../fixtures/isolation-process-tree.pipeline.js';

const PIPELINE = fileURLToPath(new URL('../fixtures/isolation-process-tree.pipeline.ts', import.meta.url));
const KILL_GRACE_MS = 1_500;
/** The stubborn modules, one per way (`ctx.exec`, `execFile`): each scenario runs both, side by side. */
const STUBBORNS = VIAS.map(stubbornModule);

afterEach(killLeftovers);

/**
 * A pipeline run with the two stubborn modules side by side on the worker tagged `stubborn` (the
 * first one), with `slots` slots: 3 where the cleanup could start beside them on that worker were
 * a slot or an answer freed early (one slot per stubborn module and one for the cleanup; a worker
 * starts a module host per slot, about a second of CPU each), 2 where the cleanup runs on the
 * other worker (1 slot) or not at all. One run covers both ways since round V (a run each before:
 * twice the orchestrators, workers and hosts): each module's processes are its own group in its
 * own host, and every check below is made per module.
 */
async function startRun({ workerCount = 1, slots = 3, timeoutMs = 120_000, orchestratorFlags = [] as string[] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mpd-isolation-tree-'));
  const report = join(dir, 'report.json');
  const ledger = join(dir, 'ledger.jsonl');
  const env = { MPD_STUBBORN_TIMEOUT_MS: String(timeoutMs), MPD_LEDGER: ledger };
  const orchestrator = spawnProcess({
    script: cliOf('orchestrator'),
    args: [
      ...['--port', '0', '--host', '127.0.0.1', '--heartbeat-interval', '1', '--heartbeat-timeout', '10'],
      ...['--pipeline', PIPELINE, '--report', report, '--min-workers', String(workerCount)],
      // Each stubborn module's end is its own: a failure of one (TimedOut, WorkerLost) must not
      // cancel the other, which would then answer Cancelled, by a race of the two answers.
      ...['--failure-mode', 'WaitForAll'],
      ...orchestratorFlags,
    ],
    cleanEnv: true,
    env,
  });
  const url = await orchestrator.listeningUrl();
  // The workers start together (a process start is seconds on a loaded machine).
  const started = Array.from({ length: workerCount }, (_, index) => {
    const id = `tree-${index + 1}`;
    const worker = spawnProcess({
      script: cliOf('worker'),
      args: workerArgs(
        url,
        id,
        ...['--pipeline', PIPELINE, '--kill-grace', String(KILL_GRACE_MS / 1_000)],
        ...(index === 0 ? ['--tags', 'stubborn', '--slots', String(slots)] : ['--slots', '1']),
      ),
      cleanEnv: true,
      env,
    });
    return worker.listeningUrl().then((workerUrl) => [id, { ...worker, url: workerUrl }] as const);
  });
  const workers = new Map<string, RunningProcess & { url: string }>(await Promise.all(started));
  /**
   * Once both bash processes wrote them: each stubborn module's host, bash and sleep (`byModule`,
   * and all of them in `pids`), and the worker running them (both run on the tagged one).
   */
  const stubborn = async () => {
    let entries: LedgerEntry[] = [];
    const pidsOf = (module: string) => entries.find((entry) => entry.event === 'pids' && entry.module === module);
    await expect
      .poll(
        () => {
          entries = readLedger(ledger);
          return STUBBORNS.every((module) => pidsOf(module) !== undefined);
        },
        // 60 s (20 s until round W): each run starts its worker's 3 module hosts at once, beside
        // another copy of the suite on 2 cores; it bounds a hang only.
        { timeout: 60_000, interval: 50, message: 'both stubborn modules to start their processes' },
      )
      .toBe(true);
    const byModule = new Map(
      STUBBORNS.map((module) => {
        const startedEntry = entries.find((entry) => entry.event === 'started' && entry.module === module)!;
        return [module, [startedEntry.pid, ...pidsOf(module)!.pids!]] as [string, number[]];
      }),
    );
    const workerIds = new Set(entries.filter((entry) => entry.event === 'started').map((entry) => entry.workerId!));
    expect([...workerIds], 'the worker(s) the stubborn modules started on').toEqual(['tree-1']);
    return { byModule, pids: [...byModule.values()].flat(), worker: workers.get('tree-1')! };
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
 * Samples the worker's load (GET /api/health) and then which modules still have a process of
 * `byModule` running, every 50 ms, until `until` settles; returns the samples where the load was
 * below that count: a slot freed while a process of its module still ran (with one module, the
 * old check's "load 0 while one ran").
 */
async function freedEarly(
  worker: { url: string },
  byModule: ReadonlyMap<string, number[]>,
  until: Promise<unknown>,
): Promise<string[]> {
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
    const alive = [...byModule].filter(([, pids]) => pids.some(isRunning)).map(([module]) => module);
    if (load !== undefined && load < alive.length) violations.push(`load ${load} while ${alive.join(', ')} ran`);
    await sleep(50);
  }
  return violations;
}

/**
 * What every scenario asserts once the run is over: one run of each stubborn module, a cleanup
 * that saw none of their processes, none left.
 */
function expectNothingLeft(run: Awaited<ReturnType<typeof startRun>>, pids: number[]): void {
  const entries = run.ledger();
  for (const module of STUBBORNS)
    expect(entries.filter((entry) => entry.event === 'started' && entry.module === module).length, module).toBe(1);
  expect(entries.filter((entry) => entry.event === 'finished')).toEqual([]);
  const cleanup = entries.find((entry) => entry.event === 'cleanup')!;
  expect(cleanup, 'the always-run cleanup ran').toBeDefined();
  expect(cleanup.pids!.sort()).toEqual([...pids].sort());
  expect(cleanup.alive, 'processes of the stubborn modules still running when cleanup started').toEqual([]);
  expect(pids.filter(isRunning)).toEqual([]);
}

/** The report's entry of each stubborn module, in {@link STUBBORNS}' order. */
const stubbornsIn = (result: RunResult) =>
  STUBBORNS.map((name) => result.modules.find((module) => module.name === name)!);

/**
 * The stubborn modules' timeout in the timeout scenario (ms). From the execute call to bash
 * writing its pids (a module start, two process starts) must fit in it, or the poll for the
 * pids gives up: 3 s did not at load 14-37 (round T, "on timeout (execFile)", three times);
 * 15 s is five times that, and costs the test wall time only (idle processes).
 */
const TIMEOUT_MS = 15_000;

// The cancel, stop and SIGKILL tests' 120 s (60 s until round W) bound a hang only: their run's
// starts (3 module hosts at once), the stubborn modules' poll above (up to 60 s) and the grace.
describe("a module's process tree (issue 10, case 10)", () => {
  it(
    'on timeout (exec and execFile side by side): the TimedOut answers and the free slots come once SIGKILL ended each group; cleanup runs after',
    async () => {
      const run = await startRun({ timeoutMs: TIMEOUT_MS });
      const { byModule, pids, worker } = await run.stubborn();
      const violations = freedEarly(worker, byModule, run.orchestrator.exited);
      expect(await run.orchestrator.exited, run.orchestrator.output()).toBe(1);
      expect(await violations).toEqual([]);
      for (const stubborn of stubbornsIn(run.report())) {
        expect(stubborn.status, stubborn.name).toBe('TimedOut');
        expect(
          stubborn.attempts.map((attempt) => attempt.outcome),
          stubborn.name,
        ).toEqual(['TimedOut']);
        // Answered after the timeout and the kill grace: bash and sleep ignored SIGTERM.
        const attempt = stubborn.attempts[0]!;
        expect(Date.parse(attempt.endTime!) - Date.parse(attempt.startTime), stubborn.name).toBeGreaterThanOrEqual(
          TIMEOUT_MS + KILL_GRACE_MS,
        );
      }
      expect(run.report().modules.find((module) => module.name === 'cleanup')!.status).toBe('Successful');
      expectNothingLeft(run, pids);
      expect(worker.output().match(/still running after the kill grace: sent SIGKILL/g), worker.output()).toHaveLength(
        STUBBORNS.length,
      );
    },
    // A run's starts, the 15 s timeout and the grace: 60 s is tight for that at load 30 and more.
    120_000,
  );

  it('on cancel (exec and execFile side by side, the orchestrator gets SIGTERM): the Cancelled answers and the free slots come once each group is gone; cleanup runs after', async () => {
    const run = await startRun();
    const { byModule, pids, worker } = await run.stubborn();
    const violations = freedEarly(worker, byModule, run.orchestrator.exited);
    run.orchestrator.child.kill('SIGTERM');
    expect(await run.orchestrator.exited, run.orchestrator.output()).toBe(1);
    expect(await violations).toEqual([]);
    const result = run.report();
    expect(result.status).toBe('Cancelled');
    for (const stubborn of stubbornsIn(result))
      expect(
        stubborn.attempts.map((attempt) => attempt.outcome),
        stubborn.name,
      ).toEqual(['Cancelled']);
    expect(result.modules.find((module) => module.name === 'cleanup')!.status).toBe('Successful');
    expectNothingLeft(run, pids);
  }, 120_000);

  it('on worker stop (exec and execFile side by side, SIGTERM twice: drain, then cancel): the worker exits once both groups are gone; cleanup runs on the other worker after', async () => {
    // A module its worker cancels on the way out is a lost attempt (not the module's failure):
    // with no lost attempt allowed, each stubborn module ends WorkerLost instead of running again.
    // A slot per stubborn module on the stopping worker, which takes no cleanup: it runs on the other one (1 slot).
    const run = await startRun({ workerCount: 2, slots: 2, orchestratorFlags: ['--max-lost-attempts', '0'] });
    const { byModule, pids, worker } = await run.stubborn();
    const violations = freedEarly(worker, byModule, worker.exited);
    worker.child.kill('SIGTERM'); // drains: the modules would run on
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
    for (const stubborn of stubbornsIn(result)) {
      expect(
        stubborn.attempts.map((attempt) => attempt.outcome),
        stubborn.name,
      ).toEqual(['Lost']);
      expect(stubborn.attempts[0]!.error).toMatch(/the worker cancelled it itself: .*worker shutting down/);
      expect(stubborn.error?.type, stubborn.name).toBe('WorkerLost');
    }
    const cleanup = result.modules.find((module) => module.name === 'cleanup')!;
    expect(cleanup.status).toBe('Successful');
    expect(cleanup.workerId).not.toBe(run.ledger().find((entry) => entry.event === 'started')!.workerId);
    expectNothingLeft(run, pids);
  }, 120_000);

  it('a worker killed with SIGKILL (exec and execFile side by side): its module hosts stop their groups themselves, SIGKILL after the grace; nothing is left', async () => {
    const run = await startRun({ slots: 2 }); // no cleanup runs: the orchestrator is killed after
    const { pids, worker } = await run.stubborn();
    const killed = performance.now();
    worker.child.kill('SIGKILL');
    await expect
      .poll(() => pids.filter(isRunning), {
        timeout: KILL_GRACE_MS + 5_000,
        interval: 50,
        message: 'every process of the modules to end',
      })
      .toEqual([]);
    // bash and sleep ignored SIGTERM: they ended with the SIGKILL after the grace.
    expect(performance.now() - killed).toBeGreaterThanOrEqual(KILL_GRACE_MS - 100);
    run.orchestrator.child.kill('SIGKILL');
  }, 120_000);
});
