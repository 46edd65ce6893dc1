import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const children: ChildProcess[] = [];

// Processes of passing tests have exited; this stops those a failing test left running.
afterAll(() => {
  for (const child of children.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

interface Cli {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Runs `mpd-orchestrator` as a real process, with the MPD_* variables of `env` only. */
function cli(args: string[], env: Record<string, string> = {}): Cli {
  const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('MPD_')));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
    cwd: PACKAGE_DIR,
    env: { ...cleanEnv, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

function firstLine(run: Cli): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const newline = run.stdout().indexOf('\n');
      if (newline >= 0) resolve(run.stdout().slice(0, newline));
    };
    run.child.stdout!.on('data', check);
    void run.exited.then((code) => reject(new Error(`exited ${code} before printing: ${run.stderr()}`)));
  });
}

describe('mpd-orchestrator CLI', () => {
  it('prints its URL, answers /api/health and exits 0 on SIGTERM', async () => {
    const run = cli(['--port', '0', '--host', '127.0.0.1', '--log-level', 'silent']);
    const line = await firstLine(run);
    expect(line).toMatch(/^mpd orchestrator listening on http:\/\/127\.0\.0\.1:\d+$/);
    const url = line.slice('mpd orchestrator listening on '.length);
    const health = await fetch(`${url}/api/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'healthy', availableWorkers: 0 });
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.stdout()).toBe(`${line}\n`);
  });

  it('prints 127.0.0.1 for the default host 0.0.0.0 and logs JSON to stderr only', async () => {
    const run = cli([], { MPD_PORT: '0', MPD_HEARTBEAT_INTERVAL: '7' });
    const line = await firstLine(run);
    expect(line).toMatch(/^mpd orchestrator listening on http:\/\/127\.0\.0\.1:\d+$/);
    const url = line.slice('mpd orchestrator listening on '.length);
    const registered = await fetch(`${url}/api/workers/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        workerNode: {
          id: 'w1',
          endpoint: 'http://w1:9000',
          capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
        },
      }),
    });
    expect(await registered.json()).toMatchObject({ heartbeatIntervalSeconds: 7 });
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
    const logs = run
      .stderr()
      .trim()
      .split('\n')
      .map((text) => JSON.parse(text) as { msg: string });
    expect(logs.map((log) => log.msg)).toContain('orchestrator listening');
  });

  it('exits 2 naming --port for --port abc', async () => {
    const run = cli(['--port', 'abc']);
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain('Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "abc"');
    expect(run.stdout()).toBe('');
  });

  it('exits 2 naming MPD_PORT for MPD_PORT=abc', async () => {
    const run = cli([], { MPD_PORT: 'abc' });
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toMatch(/MPD_PORT.*got "abc"/);
  });

  it('exits 2 for an unknown flag', async () => {
    const run = cli(['--prot', '1']);
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain("unknown option '--prot'");
  });

  it('exits 2 naming --pipeline for a missing pipeline file', async () => {
    const run = cli(['--port', '0', '--pipeline', 'no-such.pipeline.ts'], { INIT_CWD: '/tmp' });
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain(
      'Invalid setting --pipeline (MPD_PIPELINE): Pipeline file not found: /tmp/no-such.pipeline.ts',
    );
    expect(run.stdout()).toBe('');
  });

  it('--help lists every flag with its environment variable', async () => {
    const run = cli(['--help']);
    expect(await run.exited).toBe(0);
    for (const [flag, env] of [
      ['--port', 'MPD_PORT'],
      ['--host', 'MPD_HOST'],
      ['--heartbeat-interval', 'MPD_HEARTBEAT_INTERVAL'],
      ['--heartbeat-timeout', 'MPD_HEARTBEAT_TIMEOUT'],
      ['--pipeline', 'MPD_PIPELINE'],
      ['--min-workers', 'MPD_MIN_WORKERS'],
      ['--log-level', 'MPD_LOG_LEVEL'],
    ]) {
      expect(run.stdout()).toContain(flag);
      expect(run.stdout()).toContain(env);
    }
  });
});
