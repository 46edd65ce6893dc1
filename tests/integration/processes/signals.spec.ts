/**
 * Stopping the servers the way a service manager or a terminal does: SIGTERM or SIGINT to the
 * PID of the process the user started (`mpd worker …`, `mpd orchestrator …`), while a module runs in a module host with a command of
 * its own beside it. The worker drains (the module finishes, its result is accepted, the worker
 * leaves the registry, exit 0), or with a second signal cancels (exit 130); the orchestrator
 * cancels its run (exit 1). Either way no process of their trees is left in `/proc` (by parent
 * chain and by process group: module hosts run in groups of their own). Every line both servers
 * wrote to stderr meanwhile is one JSON object with level names, the same base fields, and no
 * key twice.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOrchestratorClient } from '@mpd/client';
import type { RunResult } from '@mpd/orchestrator';
import {
  cliOf,
  duplicateJsonKeys,
  killLeftovers,
  orchestratorArgs,
  type RunningProcess,
  spawnProcess,
  watchProcessTree,
  workerArgs,
} from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';

const PIPELINE = fileURLToPath(new URL('../fixtures/signals.pipeline.ts', import.meta.url));

afterEach(killLeftovers);

/**
 * Starts `mpd orchestrator …` or `mpd worker …` as the user does: the process started is node
 * running `mpd` (under tsx here), which runs the server in the same process, so its PID is the
 * server's.
 */
function startCli(command: 'orchestrator' | 'worker', args: string[], env: Record<string, string>): RunningProcess {
  return spawnProcess({
    script: cliOf('mpd'),
    args: [command, ...args],
    cleanEnv: true,
    env: { MPD_LOG_LEVEL: 'info', ...env },
  });
}

/** An orchestrator running the signals pipeline and one worker running `hold`, whose trees are watched. */
async function startRun(workerId: string) {
  const dir = mkdtempSync(join(tmpdir(), 'mpd-signals-'));
  const release = join(dir, 'release');
  const report = join(dir, 'report.json');
  const env = { MPD_RELEASE: release };
  // A heartbeat timeout of 10 s rather than the kit's 3: on a loaded machine the worker must not
  // be fenced (its module cancelled) while the test waits for it to drain.
  const orchestrator = startCli(
    'orchestrator',
    orchestratorArgs(0, '--pipeline', PIPELINE, '--report', report, '--heartbeat-timeout', '10'),
    env,
  );
  const orchestratorTree = watchProcessTree(orchestrator.child.pid!);
  const url = await orchestrator.listeningUrl();
  const worker = startCli(
    'worker',
    workerArgs(url, workerId, '--pipeline', PIPELINE, '--slots', '1', '--kill-grace', '1.5'),
    env,
  );
  const workerTree = watchProcessTree(worker.child.pid!);
  await worker.listeningUrl();
  await expect
    .poll(() => worker.stderr(), { timeout: 20_000, interval: 50, message: 'hold to start' })
    .toMatch(/hold started/);
  // The watch saw the whole tree: the worker, its module host, and the command hold started.
  await expect
    .poll(() => workerTree.seen().map((entry) => entry.command), { timeout: 5_000, interval: 50 })
    .toContain('sleep');
  expect(workerTree.seen().some((entry) => /module-host-main/.test(entry.commandLine))).toBe(true);
  const client = createOrchestratorClient({ baseUrl: url });
  /** The worker's status in the orchestrator's list; undefined once it is not listed. */
  const status = async (): Promise<string | undefined> => {
    const answer = await client.workers.list();
    if (answer.status !== 200) throw new Error(`list answered ${answer.status}`);
    return answer.body.find((node) => node.id === workerId)?.status;
  };
  return {
    worker,
    /** Sends `signal` to the worker's PID; resolves once the orchestrator lists it `Draining` while it still runs (hold holds it). */
    async drain(signal: NodeJS.Signals): Promise<void> {
      worker.child.kill(signal);
      await expect.poll(status, { timeout: 10_000, interval: 50, message: 'Draining' }).toBe('Draining');
      expect(worker.child.exitCode).toBeNull();
    },
    /** Resolves to the worker's exit code once it exited, no process of its tree left and no longer listed. */
    async workerGone(): Promise<number | null> {
      const code = await worker.exited;
      // Polled, as install.spec.ts does: a helper child that ends on its parent's exit (tsx's
      // esbuild service reads its stdin to EOF) may outlive the exit by moments under load (CI,
      // round V: `esbuild`, ppid 1, in the orchestrator's group right after it exited); a
      // leftover is a process that stays.
      await expect.poll(() => workerTree.leftovers(), { timeout: 15_000, interval: 250 }).toEqual([]);
      expect(await status()).toBeUndefined();
      return code;
    },
    release: () => writeFileSync(release, ''),
    /** SIGTERM to the orchestrator: it cancels the run and exits 1, leaving no process; the run's report. */
    async cancelRun(): Promise<RunResult> {
      orchestrator.child.kill('SIGTERM');
      expect(await orchestrator.exited, orchestrator.output()).toBe(1);
      // Polled: see workerGone.
      await expect.poll(() => orchestratorTree.leftovers(), { timeout: 15_000, interval: 250 }).toEqual([]);
      return JSON.parse(readFileSync(report, 'utf8')) as RunResult;
    },
    /** What both servers wrote to stderr that is not a clean log line (see {@link badLogLines}). */
    badLogLines: () => [...badLogLines(worker, 'mpd-worker'), ...badLogLines(orchestrator, 'mpd-orchestrator')],
    close: () => client.close(),
  };
}

/**
 * Every stderr line of `proc` is one JSON object, with no key twice, its level by name, and the
 * base fields both servers share (`service`, the process's `pid`, `hostname`); the lines that
 * are not, with why.
 */
function badLogLines(proc: RunningProcess, service: string): string[] {
  const stderr = proc.stderr();
  const bad: string[] = [];
  if (!stderr.endsWith('\n')) bad.push(`stderr does not end with a newline: ${JSON.stringify(stderr.slice(-80))}`);
  for (const line of stderr.slice(0, -1).split('\n')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      bad.push(`not JSON: ${line}`);
      continue;
    }
    const fields = parsed as Record<string, unknown>;
    const wrong = [
      ...duplicateJsonKeys(line).map((key) => `"${key}" twice`),
      typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) ? 'not an object' : [],
      /^(trace|debug|info|warn|error|fatal)$/.test(String(fields.level)) ? [] : 'level',
      typeof fields.time === 'number' ? [] : 'time',
      fields.service === service ? [] : 'service',
      fields.pid === proc.child.pid ? [] : 'pid',
      fields.hostname === hostname() ? [] : 'hostname',
      typeof fields.msg === 'string' ? [] : 'msg',
    ].flat();
    if (wrong.length > 0) bad.push(`${wrong.join(', ')}: ${line}`);
  }
  return bad;
}

describe('signals to the process the user started', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    '%s to the worker: it drains (its module finishes and is accepted), leaves the registry, exits 0 and leaves no process; SIGTERM to the orchestrator cancels its run; the logs are clean JSON',
    async (signal) => {
      const workerId = `drain-${signal.toLowerCase()}`;
      const run = await startRun(workerId);
      try {
        await run.drain(signal);
        run.release();
        expect(await run.workerGone(), run.worker.output()).toBe(0);
        expect(run.worker.stderr()).toMatch(/draining: finishing running modules/);
        // `after` waits for a worker: SIGTERM cancels the run, with the summary and the report.
        const result = await run.cancelRun();
        expect(result.status).toBe('Cancelled');
        const hold = result.modules.find((module) => module.name === 'hold')!;
        expect(hold).toMatchObject({ status: 'Successful', workerId, result: { workerId } });
        expect(hold.attempts.map((attempt) => attempt.outcome)).toEqual(['Succeeded']);
      } finally {
        await run.close();
      }
      expect(run.badLogLines()).toEqual([]);
    },
  );

  it('SIGINT to the worker drains it; a second SIGINT cancels its module: exit 130, unregistered, no process left; the logs are clean JSON', async () => {
    const run = await startRun('cancel-sigint');
    try {
      await run.drain('SIGINT');
      run.worker.child.kill('SIGINT');
      expect(await run.workerGone(), run.worker.output()).toBe(130);
      expect(run.worker.stderr()).toMatch(/second signal: cancelling running modules/);
      const hold = (await run.cancelRun()).modules.find((module) => module.name === 'hold')!;
      expect(hold.attempts[0]).toMatchObject({ outcome: 'Lost', workerId: 'cancel-sigint' });
    } finally {
      await run.close();
    }
    expect(run.badLogLines()).toEqual([]);
  });
});
