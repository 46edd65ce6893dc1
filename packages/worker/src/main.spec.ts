import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const PIPELINE_URL = new URL('../../pipeline/src/index.ts', import.meta.url).href;
const children: ChildProcess[] = [];
const tempDirs: string[] = [];

// Processes of passing tests have exited; this stops those a failing test left running.
afterAll(() => {
  for (const child of children.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

interface Cli {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Runs `mpd-worker` as a real process, with the MPD_* variables (and INIT_CWD) of `env` only. */
function cli(args: string[], env: Record<string, string> = {}): Cli {
  const cleanEnv = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('MPD_') && key !== 'INIT_CWD'),
  );
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
    check();
    run.child.stdout!.on('data', check);
    void run.exited.then((code) => reject(new Error(`exited ${code} before printing: ${run.stderr()}`)));
  });
}

/** Sends `signal` and resolves to the exit code and how long the exit took. */
async function stop(run: Cli, signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  run.child.kill(signal);
  const code = await run.exited;
  return { code, ms: Date.now() - started };
}

const LISTENING = /^mpd worker (\S+) listening on (http:\/\/127\.0\.0\.1:\d+)$/;

describe('mpd-worker CLI', () => {
  it('prints its id and URL, answers /api/health with maxLoad = --max-parallel, exits 0 on SIGTERM', async () => {
    const run = cli([
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--id',
      'w-cli',
      '--max-parallel',
      '5',
      '--log-level',
      'silent',
    ]);
    const line = await firstLine(run);
    expect(line).toMatch(/^mpd worker w-cli listening on http:\/\/127\.0\.0\.1:\d+$/);
    const url = LISTENING.exec(line)![2]!;
    expect(Number(new URL(url).port)).toBeGreaterThan(0);

    const health = await fetch(`${url}/api/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'healthy', currentLoad: 0, maxLoad: 5 });

    const { code, ms } = await stop(run, 'SIGTERM');
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5_000);
    expect(run.stdout()).toBe(`${line}\n`);
    expect(run.stderr()).toBe('');
  });

  it('reads MPD_* environment variables and logs JSON to stderr only', async () => {
    const run = cli([], { MPD_PORT: '0', MPD_HOST: '127.0.0.1', MPD_MAX_PARALLEL: '3', MPD_WORKER_ID: 'w-env' });
    const line = await firstLine(run);
    expect(line).toMatch(/^mpd worker w-env listening on http:\/\/127\.0\.0\.1:\d+$/);
    const url = LISTENING.exec(line)![2]!;
    const health = await fetch(`${url}/api/health`);
    expect(await health.json()).toMatchObject({ status: 'healthy', currentLoad: 0, maxLoad: 3 });

    const { code } = await stop(run, 'SIGINT');
    expect(code).toBe(0);
    expect(run.stdout()).toBe(`${line}\n`);
    const logs = run
      .stderr()
      .trim()
      .split('\n')
      .map((text) => JSON.parse(text) as { msg: string; service: string });
    expect(logs.map((log) => log.msg)).toContain(
      'no --orchestrator given: serving the worker API without registering anywhere',
    );
    expect(logs.every((log) => log.service === 'mpd-worker')).toBe(true);
  });

  it('--help lists every flag with its environment variable and exits 0', async () => {
    const run = cli(['--help']);
    expect(await run.exited).toBe(0);
    for (const [flag, env] of [
      ['--port', 'MPD_PORT'],
      ['--host', 'MPD_HOST'],
      ['--orchestrator', 'MPD_ORCHESTRATOR_URL'],
      ['--id', 'MPD_WORKER_ID'],
      ['--endpoint', 'MPD_ENDPOINT'],
      ['--tags', 'MPD_TAGS'],
      ['--tools', 'MPD_TOOLS'],
      ['--max-parallel', 'MPD_MAX_PARALLEL'],
      ['--pipeline', 'MPD_PIPELINE'],
      ['--log-level', 'MPD_LOG_LEVEL'],
    ]) {
      expect(run.stdout()).toContain(`${flag} <`);
      expect(run.stdout()).toContain(env);
    }
    expect(run.stdout()).toMatch(/^Usage: mpd-worker \[options\]/);
  });

  it('exits 2 naming --port (MPD_PORT) for --port abc', async () => {
    const run = cli(['--port', 'abc']);
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain('Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "abc"');
    expect(run.stdout()).toBe('');
  });

  it('exits 2 naming MPD_MAX_PARALLEL for MPD_MAX_PARALLEL=0', async () => {
    const run = cli([], { MPD_PORT: '0', MPD_MAX_PARALLEL: '0' });
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain(
      'Invalid setting --max-parallel (MPD_MAX_PARALLEL): must be an integer from 1 to 1024, got "0"',
    );
    expect(run.stdout()).toBe('');
  });

  it('exits 2 for an unknown flag or an extra argument', async () => {
    const unknown = cli(['--prot', '1']);
    const extra = cli(['--port', '0', 'extra']);
    expect(await unknown.exited).toBe(2);
    expect(unknown.stderr()).toContain("unknown option '--prot'");
    expect(await extra.exited).toBe(2);
    expect(extra.stderr()).toContain('too many arguments');
    expect(extra.stdout()).toBe('');
  });

  it('exits 1 with a clear message when its port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as AddressInfo;
    try {
      const run = cli(['--port', String(port), '--host', '127.0.0.1']);
      expect(await run.exited).toBe(1);
      expect(run.stderr()).toContain(`mpd-worker: Cannot listen on 127.0.0.1:${port}: listen EADDRINUSE`);
      expect(run.stdout()).toBe('');
    } finally {
      blocker.close();
    }
  });

  it('exits 2 saying the pipeline file was not found, resolved against INIT_CWD', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpd-worker-cli-'));
    tempDirs.push(dir);
    const run = cli(['--port', '0', '--host', '127.0.0.1', '--pipeline', 'missing.ts'], { INIT_CWD: dir });
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain(
      `Invalid setting --pipeline (MPD_PIPELINE): Pipeline file not found: ${join(dir, 'missing.ts')}`,
    );
    expect(run.stdout()).toBe('');
  });

  it('--pipeline FILE loads a real pipeline file and executes its modules over HTTP', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpd-worker-cli-'));
    tempDirs.push(dir);
    writeFileSync(
      join(dir, 'cli.pipeline.ts'),
      [
        `import { defineModule, definePipeline } from ${JSON.stringify(PIPELINE_URL)};`,
        `const greet = defineModule({`,
        `  name: 'greet',`,
        `  params: { who: 'world' },`,
        `  run: (ctx) => ({ greeting: 'hello ' + ctx.params.who, workerId: ctx.workerId, ci: ctx.env.CI ?? null }),`,
        `});`,
        `export default definePipeline({ name: 'cli-spec', modules: [greet] });`,
        '',
      ].join('\n'),
    );
    const run = cli(
      [
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--id',
        'w-pipe',
        '--pipeline',
        'cli.pipeline.ts',
        '--log-level',
        'silent',
      ],
      {
        INIT_CWD: dir,
      },
    );
    const line = await firstLine(run);
    expect(line).toMatch(/^mpd worker w-pipe listening on http:\/\/127\.0\.0\.1:\d+$/);
    const url = LISTENING.exec(line)![2]!;

    const execute = (moduleTypeName: string) =>
      fetch(`${url}/api/execution/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          executionId: `exec-${moduleTypeName}`,
          moduleTypeName,
          serializedModule: JSON.stringify({ who: 'mpd' }),
          dependencyResults: {},
          environmentVariables: { CI: 'true' },
          timeout: '00:00:30',
        }),
      });
    const response = await execute('greet');
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      success: boolean;
      executionId: string;
      workerId: string;
      serializedResult: string;
    };
    expect(body).toMatchObject({ success: true, executionId: 'exec-greet', workerId: 'w-pipe' });
    expect(JSON.parse(body.serializedResult)).toEqual({ greeting: 'hello mpd', workerId: 'w-pipe', ci: 'true' });

    const unknown = await execute('deploy');
    expect(unknown.status).toBe(404);

    const { code, ms } = await stop(run);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5_000);
  });
});
