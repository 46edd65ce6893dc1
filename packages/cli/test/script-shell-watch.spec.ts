/**
 * `mpd` under npm's shell (`npx mpd worker` is npm → `sh -c` → node): when the shell is gone, the
 * server stops as on SIGTERM; when its parent is no shell, it keeps running. Here the shell is
 * started directly (npm itself is tests/install's part), with the variable npm sets.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cliOf } from '@mpd/test-kit';
import { afterAll, describe, expect, it } from 'vitest';

const cwd = new URL('..', import.meta.url).pathname;
const workerArgs = ['worker', '--port', '0', '--host', '127.0.0.1'];
/** What npm exec gives the command it runs (and nothing of pnpm's or vitest's own). */
const npmEnv = (): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key) && !key.startsWith('MPD_'))),
  npm_lifecycle_event: 'npx',
  npm_command: 'exec',
});
const started: ChildProcess[] = [];

afterAll(() => {
  for (const child of started) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone already
    }
  }
});

/** The pids whose parent is `pid`. */
const childrenOf = (pid: number): number[] =>
  readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);

/** Whether `pid` runs (a zombie, exited and not yet reaped, does not). */
const runs = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
};

/** Starts `command args…` in a process group of its own, collecting its output. */
function start(command: string, args: string[]) {
  const child = spawn(command, args, { cwd, env: npmEnv(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return { child, stdout: () => stdout, stderr: () => stderr };
}

describe('mpd under an npm script', () => {
  it("stops as on SIGTERM (the worker drains, exits) once npm's shell is gone", async () => {
    // `; exit` keeps the shell from replacing itself with node (as bash would for one command).
    const shell = start('sh', [
      '-c',
      `"$@"; exit $?`,
      'sh',
      process.execPath,
      '--import',
      'tsx',
      cliOf('mpd'),
      ...workerArgs,
    ]);
    await expect.poll(shell.stdout, { timeout: 15_000 }).toMatch(/listening on/);
    const [worker] = childrenOf(shell.child.pid!);
    expect(worker).toBeDefined();
    // As npm passes a SIGTERM on: to the shell only, which dies of it.
    shell.child.kill('SIGTERM');
    await expect.poll(() => runs(worker!), { timeout: 10_000, interval: 100 }).toBe(false);
    const logs = shell
      .stderr()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { msg: string; signal?: string });
    expect(logs).toContainEqual(
      expect.objectContaining({ msg: expect.stringMatching(/exited: stopping as on SIGTERM$/) }),
    );
    expect(logs).toContainEqual(
      expect.objectContaining({ signal: 'SIGTERM', msg: expect.stringMatching(/^draining/) }),
    );
  });

  it('keeps running when its parent is no shell (a launcher of its own that exits)', async () => {
    const launcher = start(process.execPath, [
      '-e',
      `const { spawn } = require('node:child_process');
       const worker = spawn(process.execPath, process.argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
       // Exits once the worker runs (and watches its parent, were it to).
       worker.stdout.on('data', (chunk) => {
         if (String(chunk).includes('listening on')) {
           // Not console.log: under nx (FORCE_COLOR) it colours numbers.
           process.stdout.write(worker.pid + '\\n');
           process.exit(0);
         }
       });`,
      '--',
      '--import',
      'tsx',
      cliOf('mpd'),
      ...workerArgs,
    ]);
    await new Promise((resolve) => launcher.child.on('exit', resolve));
    const worker = Number(launcher.stdout().trim());
    expect(worker).toBeGreaterThan(0);
    started.push({ pid: worker } as ChildProcess);
    // Well past the watch's check and its second look (2 × 250 ms).
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(runs(worker)).toBe(true);
    process.kill(worker, 'SIGTERM');
    await expect.poll(() => runs(worker), { timeout: 10_000, interval: 100 }).toBe(false);
  });
});
