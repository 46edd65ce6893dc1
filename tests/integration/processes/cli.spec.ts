/**
 * The command-line programs as real processes: `--version`, exit codes of a pipeline run,
 * graceful shutdown, and a worker killed in the middle of a module.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createOrchestratorClient } from '@mpd/client';
import { killLeftovers, cliOf, orchestratorArgs as cliOrchestratorArgs, spawnProcess, workerArgs } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../deploy/deploy-files.js';
import { fixture, runReport, startListening, startOrchestratorRun } from '../helpers/cli-runs.js';

/** The temporary directories a test made ({@link scratchDir}), removed after it, passed or failed. */
const scratchDirs: string[] = [];
afterEach(() => {
  killLeftovers(); // first: a leftover process may still write into them
  for (const dir of scratchDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
/** A new empty directory under the system's temp directory, removed after the test. */
function scratchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mpd-e2e-'));
  scratchDirs.push(dir);
  return dir;
}

/** Starts a package's CLI under tsx; resolves once it prints the URL it listens on. */
const start = (pkg: 'orchestrator' | 'worker', args: string[]) => startListening(pkg, args);

const orchestratorArgs = (...extra: string[]) => cliOrchestratorArgs(0, ...extra);

/**
 * A worker's `--pipeline` with one slot: each fixture here runs one module at a time (a chain),
 * and a worker starts a module host per slot (about a second of CPU each; two slots by default on
 * a 2-core machine) that would never run a module.
 */
const oneSlot = (pipeline: string): string[] => ['--pipeline', pipeline, '--slots', '1'];

describe('both CLIs', () => {
  it("in a clone, `pnpm orchestrator` and `pnpm worker` name themselves so: an unknown flag's hint is a command that runs there", async () => {
    // What a new user typed (round AE's walkthrough): the hint said `mpd-orchestrator --help`,
    // which a clone does not have on its PATH. Run through pnpm itself, as the README says, each
    // in a process group of its own, stopped whole even if it hangs.
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([key]) => !key.startsWith('MPD_') && key !== 'INIT_CWD'),
    );
    const answers = await Promise.all(
      (['orchestrator', 'worker'] as const).map(async (script) => {
        const child = spawn('pnpm', ['--silent', script, '--bogus', '1'], {
          cwd: REPO_ROOT,
          env,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (chunk: Buffer) => (stderr += String(chunk)));
        try {
          const [code] = (await once(child, 'close')) as [number | null];
          return { script, code, stderr };
        } finally {
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {
            // ESRCH: the group has ended, as it should.
          }
        }
      }),
    );
    for (const { script, code, stderr } of answers) {
      expect(stderr, script).toContain(`error: unknown option '--bogus'\n(pnpm ${script} --help lists the flags)\n`);
      expect(code, script).not.toBe(0);
    }
  }, 120_000);

  it('--version and -V print the package version and exit 0, before any setting is checked', async () => {
    // The four processes run together (each start is seconds on a loaded machine).
    const runs = (['orchestrator', 'worker'] as const).flatMap((pkg) => {
      const packageJson = new URL(`../../../packages/${pkg}/package.json`, import.meta.url);
      const { version } = JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string };
      return ['--version', '-V'].map((flag) => ({
        name: `${pkg} ${flag}`,
        version,
        run: spawnProcess({ script: cliOf(pkg), args: [flag, '--port', 'abc'], cleanEnv: true }),
      }));
    });
    for (const { name, version, run } of runs) {
      expect(await run.exited, name).toBe(0);
      expect(run.output(), name).toBe(`${version}\n`);
    }
  });
});

describe('mpd-orchestrator --pipeline', () => {
  // One test since round T: the first of the two --timings runs is the failing run the exit
  // code and report are checked on (each run is an orchestrator, a worker and its module hosts:
  // seconds of CPU each; a run of its own added no check).
  it('exits non-zero when the pipeline fails, reporting what failed and what did not run; --timings keeps the durations of the modules that succeeded from run to run', async () => {
    const timings = join(scratchDir(), 'cache', 'timings.json');
    const pipeline = fixture('failing.pipeline.ts');
    const runOnce = async (id: string, extra: string[] = []) => {
      const orchestrator = await start(
        'orchestrator',
        orchestratorArgs('--pipeline', pipeline, '--timings', timings, ...extra),
      );
      await start('worker', workerArgs(orchestrator.url, id, ...oneSlot(pipeline)));
      expect(await orchestrator.exited).toBe(1);
      return orchestrator.output();
    };
    const report = runReport();
    const output = await runOnce('timings-1', ['--report', report.file]);
    expect(output).toMatch(/Pipeline 'failing' Failed/);
    expect(output).toMatch(/Failures:\n {2}test \(Failed\): 3 tests failed/);
    expect(output).toMatch(/Not run:\n {2}publish \(DependencyFailed\): dependency 'test' ended Failed/);
    const result = report.read();
    expect(result.modules.map((module) => [module.name, module.status])).toEqual([
      ['compile', 'Successful'],
      ['test', 'Failed'],
      ['publish', 'DependencyFailed'],
    ]);
    expect(output).not.toMatch(/durations of/);
    const first = JSON.parse(readFileSync(timings, 'utf8')) as { pipeline: string; modules: Record<string, number> };
    expect(first.pipeline).toBe('failing');
    expect(Object.keys(first.modules)).toEqual(['compile']); // test failed, publish did not run
    expect(await runOnce('timings-2')).toMatch(`durations of 1 module(s) read from ${timings}`);
    // 120 s: four process starts one after the other (the worker needs the orchestrator's URL,
    // the second run the first one's file); 19.6 s on CI, past the default 60 s three times at
    // load 25-37 (2026-12-02, two copies side by side and once alone beside others' suites).
  }, 120_000);

  // Kept beside faults.spec.ts's random kills: one kill, and the exact attempts and survivor (faults checks only invariants).
  it('a worker killed with SIGKILL mid-module: the module runs again on the other worker and the run succeeds', async () => {
    const report = runReport();
    const pipeline = fixture('slow.pipeline.ts');
    const orchestrator = await startOrchestratorRun({ pipeline, minWorkers: 2, report: report.file });
    // Started together: a process start is seconds on a loaded machine.
    const [one, two] = await Promise.all([
      start('worker', workerArgs(orchestrator.url, 'kill-1', ...oneSlot(pipeline))),
      start('worker', workerArgs(orchestrator.url, 'kill-2', ...oneSlot(pipeline))),
    ]);
    // Kill whichever worker started the first module, while it runs.
    await expect
      .poll(() => one.output() + two.output(), { timeout: 15_000, interval: 20, message: 'the first module to start' })
      .toMatch(/step started/);
    const victim = /step started/.test(one.output()) ? one : two;
    const survivor = victim === one ? 'kill-2' : 'kill-1';
    victim.child.kill('SIGKILL');
    expect(await orchestrator.exited).toBe(0);
    const result = report.read();
    const first = result.modules.find((module) => module.name === 'first')!;
    expect(first.status).toBe('Successful');
    expect(first.workerId).toBe(survivor);
    expect(first.attempts.map((attempt) => attempt.outcome)).toEqual(['Lost', 'Succeeded']);
    expect((first.result as { workerId: string }).workerId).toBe(survivor);
    expect(result.modules.find((module) => module.name === 'second')!.status).toBe('Successful');
  });
});

describe('timeouts', () => {
  it('the orchestrator enforces a module timeout (plus its margin) when the worker cannot answer', async () => {
    const report = runReport();
    const pipeline = fixture('hang.pipeline.ts');
    const orchestrator = await startOrchestratorRun(
      { pipeline, report: report.file },
      ...['--timeout-margin', '0.3', '--heartbeat-timeout', '60'],
    );
    const worker = await start('worker', workerArgs(orchestrator.url, 'frozen', ...oneSlot(pipeline)));
    await expect
      .poll(() => worker.output(), { timeout: 15_000, interval: 20, message: 'the module to start' })
      .toMatch(/hang started/);
    worker.child.kill('SIGSTOP'); // frozen: the worker's own timeout cannot answer
    try {
      expect(await orchestrator.exited).toBe(1);
    } finally {
      worker.child.kill('SIGCONT');
    }
    const result = report.read();
    const hang = result.modules[0]!;
    expect(hang).toMatchObject({ status: 'TimedOut', error: { type: 'OrchestratorTimeout' } });
    expect(hang.attempts.map((attempt) => attempt.outcome)).toEqual(['TimedOut']);
  });
});

describe('crash-loop protection', () => {
  it('a module that kills every worker it lands on fails after --max-lost-attempts, on different workers', async () => {
    const report = runReport();
    const pipeline = fixture('crash.pipeline.ts');
    const orchestrator = await startOrchestratorRun(
      { pipeline, minWorkers: 2, report: report.file },
      ...['--max-lost-attempts', '1'],
    );
    // In the worker's own process (--isolation none): in a module host the poison kills only the
    // host, and the module fails alone (tests/integration/faults/isolation-crashes.spec.ts).
    await Promise.all(
      ['crash-1', 'crash-2'].map((id) =>
        start('worker', workerArgs(orchestrator.url, id, '--pipeline', pipeline, '--isolation', 'none')),
      ),
    );
    expect(await orchestrator.exited).toBe(1);
    const result = report.read();
    const poison = result.modules.find((module) => module.name === 'poison')!;
    expect(poison).toMatchObject({ status: 'Failed', error: { type: 'WorkerLost' } });
    expect(poison.attempts.map((attempt) => attempt.outcome)).toEqual(['Lost', 'Lost']);
    expect(new Set(poison.attempts.map((attempt) => attempt.workerId))).toEqual(new Set(['crash-1', 'crash-2']));
    expect(poison.error!.message).toMatch(/was lost with its worker 2 times/);
    expect(result.modules.find((module) => module.name === 'after')!.status).toBe('DependencyFailed');
  });
});

describe('mpd-worker', () => {
  it('drains on SIGTERM: the running module finishes there, the rest runs elsewhere, the worker exits 0', async () => {
    const report = runReport();
    const pipeline = fixture('slow.pipeline.ts');
    const orchestrator = await startOrchestratorRun({ pipeline, minWorkers: 2, report: report.file });
    // `second` ends only once the drained worker has unregistered (the test writes this file
    // then): else the run could end, and the orchestrator exit, before the drained worker's
    // unregistration reached it (`second` takes 300 ms; seen failing so under load).
    const unregistered = join(scratchDir(), 'unregistered');
    const env = { SLOW_SECOND_AFTER: unregistered };
    // Started together: a process start is seconds on a loaded machine.
    const [one, two] = await Promise.all([
      startListening('worker', workerArgs(orchestrator.url, 'term-1', ...oneSlot(pipeline)), { env }),
      startListening('worker', workerArgs(orchestrator.url, 'term-2', ...oneSlot(pipeline)), { env }),
    ]);
    await expect
      .poll(() => one.output() + two.output(), { timeout: 15_000, interval: 20, message: 'the first module to start' })
      .toMatch(/step started/);
    const drained = /step started/.test(one.output()) ? one : two;
    const [drainedId, otherId] = drained === one ? ['term-1', 'term-2'] : ['term-2', 'term-1'];
    drained.child.kill('SIGTERM');
    expect(await drained.exited).toBe(0);
    expect(drained.output()).toMatch(/unregistered from the orchestrator/);
    writeFileSync(unregistered, '');
    expect(await orchestrator.exited).toBe(0);
    const result = report.read();
    const first = result.modules.find((module) => module.name === 'first')!;
    expect(first).toMatchObject({ status: 'Successful', workerId: drainedId });
    expect(first.attempts.map((attempt) => attempt.outcome)).toEqual(['Succeeded']);
    expect(result.modules.find((module) => module.name === 'second')).toMatchObject({
      status: 'Successful',
      workerId: otherId,
    });
    expect(drained.output()).toMatch(/draining: finishing running modules/);
    expect(drained.output()).toMatch(/unregistered from the orchestrator/);
  });

  // The two cases share an orchestrator without a pipeline (one process start less) and run
  // side by side: they register different ids, and each checks only its own.
  it('unregisters from the orchestrator on SIGTERM and exits 0; with --credential-file, restarted after a SIGKILL, the worker takes its place again long before the heartbeat timeout', async () => {
    // Offline only after 60 s without a heartbeat: without the file, the restart would wait that long.
    const orchestrator = await start('orchestrator', [
      ...['--port', '0', '--host', '127.0.0.1', '--heartbeat-interval', '0.2', '--heartbeat-timeout', '60'],
    ]);
    const client = createOrchestratorClient({ baseUrl: orchestrator.url });
    const ids = async (): Promise<string[] | undefined> => {
      const workers = await client.workers.list();
      return workers.status === 200 ? workers.body.map((node) => node.id) : undefined;
    };
    const unregisters = async () => {
      const worker = await start('worker', workerArgs(orchestrator.url, 'term-worker'));
      await expect
        .poll(async () => (await ids())?.includes('term-worker'), {
          timeout: 10_000,
          interval: 20,
          message: 'registration',
        })
        .toBe(true);
      worker.child.kill('SIGTERM');
      expect(await worker.exited).toBe(0);
      const after = await ids();
      expect(after).toBeDefined();
      expect(after).not.toContain('term-worker');
      expect(worker.output()).toMatch(/unregistered from the orchestrator/);
    };
    const credentialFile = async () => {
      const file = join(scratchDir(), 'credential');
      const endpointOf = async (): Promise<string | undefined> => {
        const workers = await client.workers.list();
        return workers.status === 200 ? workers.body.find((node) => node.id === 'kept')?.endpoint : undefined;
      };
      const first = await start('worker', workerArgs(orchestrator.url, 'kept', '--credential-file', file));
      await expect.poll(endpointOf, { timeout: 10_000, interval: 20, message: 'registration' }).toBe(first.url);
      await expect
        .poll(() => existsSync(file), { timeout: 5_000, interval: 20, message: 'the credential file' })
        .toBe(true);
      first.child.kill('SIGKILL');
      await first.exited;
      const restarted = await start('worker', workerArgs(orchestrator.url, 'kept', '--credential-file', file));
      await expect
        .poll(endpointOf, { timeout: 10_000, interval: 20, message: 'the restarted worker in its place' })
        .toBe(restarted.url);
      // As a status, not inside a port number (`listening on http://127.0.0.1:40989` once failed this).
      expect(restarted.output()).not.toMatch(/\b409\b|WorkerIdTaken/);
    };
    try {
      // Both to their end before the client closes: with Promise.all, one case failing closed it
      // while the other still polled through it. Then the first failure, as Promise.all gave it.
      const outcomes = await Promise.allSettled([unregisters(), credentialFile()]);
      const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
      if (failed) throw failed.reason;
    } finally {
      await client.close();
    }
    orchestrator.child.kill('SIGTERM');
    expect(await orchestrator.exited).toBe(0);
  });
});
