import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createWorkerClient, MpdClientError } from '@mpd/client';
import {
  answeredInProcess,
  cliOf,
  killLeftovers,
  makeTestCertificates,
  spawnProcess,
  type RunningProcess,
  type TestCertificates,
  UNKNOWN_FLAGS,
  unknownFlagAnswers,
} from '@mpd/test-kit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runWorkerCli } from './run-worker-cli.js';

const PIPELINE_URL = new URL('../../../pipeline/src/index.ts', import.meta.url).href;
const tempDirs: string[] = [];

// Processes of passing tests have exited; this stops those a failing test left running.
afterAll(() => {
  killLeftovers();
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Runs `mpd-worker` as a real process, with the MPD_* variables (and INIT_CWD) of `env` only. */
const cli = (args: string[], env: Record<string, string> = {}): RunningProcess =>
  spawnProcess({ script: cliOf('worker'), args, env, cleanEnv: true });

const LISTENING = /^mpd worker (\S+) listening on (http:\/\/127\.0\.0\.1:\d+)$/;

/**
 * Runs `mpd-worker ARGS` in this process (`runWorkerCli`, `cwd` in place of INIT_CWD) with the
 * MPD_* variables of `env` only, for a command line it answers before it loads anything: its
 * exit code and what it wrote (test-kit's `answeredInProcess`).
 */
const answered = (args: string[], env: Record<string, string> = {}, cwd = process.cwd()) =>
  answeredInProcess(runWorkerCli, args, env, cwd);

describe('mpd-worker CLI', () => {
  it('prints its id and URL, answers /api/health with maxLoad = --slots, exits 0 on SIGTERM', async () => {
    const run = cli(['--port', '0', '--host', '127.0.0.1', '--id', 'w-cli', '--slots', '5', '--log-level', 'silent']);
    const line = await run.firstLine();
    expect(line).toMatch(/^mpd worker w-cli listening on http:\/\/127\.0\.0\.1:\d+$/);
    const url = LISTENING.exec(line)![2]!;
    expect(Number(new URL(url).port)).toBeGreaterThan(0);

    const health = await fetch(`${url}/api/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'healthy', currentLoad: 0, maxLoad: 5 });

    const { code, ms } = await run.stop('SIGTERM');
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5_000);
    expect(run.stdout()).toBe(`${line}\n`);
    expect(run.stderr()).toBe('');
  });

  it('reads MPD_* environment variables and logs JSON to stderr only; tokens given by their variables are never warned of nor shown', async () => {
    const join = 'join-env-value-0123456789';
    const token = 'worker-env-value-0123456789';
    // The tokens' quiet case was a process of its own beside the flags' until round V.
    const run = cli([], {
      MPD_PORT: '0',
      MPD_HOST: '127.0.0.1',
      MPD_MAX_PARALLEL: '3',
      MPD_WORKER_ID: 'w-env',
      MPD_JOIN_TOKEN: join,
      MPD_WORKER_TOKEN: token,
    });
    const line = await run.firstLine();
    expect(line).toMatch(/^mpd worker w-env listening on http:\/\/127\.0\.0\.1:\d+$/);
    const url = LISTENING.exec(line)![2]!;
    const health = await fetch(`${url}/api/health`);
    expect(await health.json()).toMatchObject({ status: 'healthy', currentLoad: 0, maxLoad: 3 });

    const { code } = await run.stop('SIGINT');
    expect(code).toBe(0);
    expect(run.stdout()).toBe(`${line}\n`);
    const logs = run.stderrLogs();
    expect(logs.map((log) => log.msg)).toContain(
      'no --orchestrator given: serving the worker API without registering anywhere',
    );
    // The same base fields as the orchestrator's.
    for (const log of logs) {
      expect(log).toMatchObject({ service: 'mpd-worker', hostname: hostname() });
      expect(log.pid).toEqual(expect.any(Number));
    }
    expect(run.stderr()).not.toContain('command line');
    for (const value of [join, token]) expect(run.output()).not.toContain(value);
  });

  // One process for the old name and the two token flags (three until round V: each is a
  // process start, about a second of CPU): each warning is picked by its own fields.
  it('warns once, in its JSON log, for each setting given by its old name, and once per token given as a flag, naming the flag and its variable, never the value', async () => {
    const join = 'join-flag-value-0123456789';
    const token = 'worker-flag-value-0123456789';
    const run = cli([
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--max-parallel',
      '2',
      '--join-token',
      join,
      `--token=${token}`,
    ]);
    const url = LISTENING.exec(await run.firstLine())![2]!;
    expect(await (await fetch(`${url}/api/health`)).json()).toMatchObject({ maxLoad: 2 });
    expect((await run.stop('SIGTERM')).code).toBe(0);
    const deprecations = run.stderrLogs().filter((log) => log.msg.includes('deprecated'));
    expect(deprecations).toEqual([
      expect.objectContaining({
        level: 'warn',
        service: 'mpd-worker',
        msg: '--max-parallel (MPD_MAX_PARALLEL) is deprecated; use --slots (MPD_SLOTS)',
      }),
    ]);
    // Picked by their fields, not by the level's spelling (a number or a name).
    const warnings = run.stderrLogs().filter((log) => 'flag' in log);
    expect(warnings.map(({ flag, use, msg, service }) => ({ flag, use, msg, service }))).toEqual([
      {
        flag: '--join-token',
        use: 'MPD_JOIN_TOKEN',
        service: 'mpd-worker',
        msg: '--join-token puts a secret on the command line, where ps, shell history and tools that echo commands (pnpm, CI logs) show it; set MPD_JOIN_TOKEN instead',
      },
      {
        flag: '--token',
        use: 'MPD_WORKER_TOKEN',
        service: 'mpd-worker',
        msg: '--token puts a secret on the command line, where ps, shell history and tools that echo commands (pnpm, CI logs) show it; set MPD_WORKER_TOKEN instead',
      },
    ]);
    expect(warnings.every((log) => [40, 'warn'].includes(log.level))).toBe(true);
    for (const value of [join, token]) expect(run.output()).not.toContain(value);
  });

  it('--help lists every flag with its environment variable and exits 0', async () => {
    const run = await answered(['--help']);
    expect(run.exitCode).toBe(0);
    for (const [flag, env] of [
      ['--port', 'MPD_PORT'],
      ['--host', 'MPD_HOST'],
      ['--orchestrator', 'MPD_ORCHESTRATOR_URL'],
      ['--id', 'MPD_WORKER_ID'],
      ['--endpoint', 'MPD_ENDPOINT'],
      ['--tags', 'MPD_TAGS'],
      ['--tools', 'MPD_TOOLS'],
      ['--slots', 'MPD_SLOTS'],
      ['--max-parallel', 'MPD_MAX_PARALLEL'],
      ['--pipeline', 'MPD_PIPELINE'],
      ['--log-level', 'MPD_LOG_LEVEL'],
    ]) {
      expect(run.stdout).toContain(`${flag} <`);
      expect(run.stdout).toContain(env);
    }
    expect(run.stdout).toMatch(/^Usage: mpd-worker \[options\]/);
  });

  it('exits 2 naming --port (MPD_PORT) for --port abc', async () => {
    const run = await answered(['--port', 'abc']);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "abc"');
    expect(run.stdout).toBe('');
  });

  it('exits 2 naming MPD_MAX_PARALLEL for MPD_MAX_PARALLEL=0', async () => {
    const run = await answered([], { MPD_PORT: '0', MPD_MAX_PARALLEL: '0' });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain(
      'Invalid setting --max-parallel (MPD_MAX_PARALLEL): must be an integer from 1 to 1024, got "0"',
    );
    expect(run.stdout).toBe('');
  });

  it('exits 2 for an invalid URL setting without printing its user name, password or query', async () => {
    const runs = [
      await answered(['--port', '0', '--orchestrator', 'http://ci:pa55word@orchestrator example:8080/?token=t0ken']),
      await answered(['--port', '0'], { MPD_ORCHESTRATOR_URL: 'ftp://ci:pa55word@orchestrator.example/?token=t0ken' }),
      await answered(['--port', '0', '--endpoint', 'http://ci:pa55word@worker1:9000/?token=t0ken']),
    ];
    const shown = [
      'Invalid setting --orchestrator (MPD_ORCHESTRATOR_URL): must be a URL such as http://127.0.0.1:8080, got "http://***@orchestrator example:8080/?…"',
      'Invalid setting --orchestrator (MPD_ORCHESTRATOR_URL): must be an http:// or https:// URL, got "ftp://***@orchestrator.example/?…"',
      'got "http://***@worker1:9000/?…"',
    ];
    for (const [index, run] of runs.entries()) {
      expect(run.exitCode).toBe(2);
      expect(run.stderr).toContain(shown[index]);
      expect(run.stdout + run.stderr).not.toMatch(/pa55word|t0ken/);
    }
  });

  it("never logs --orchestrator's user name and password: its registration attempts name it without them; makes --cache-dir relative to INIT_CWD (where `pnpm worker` was typed), as every path setting", async () => {
    // One process for both (each is a process start, seconds of CPU): the cache directory is
    // made at start with --orchestrator (the cache serves artifacts), where the registration is.
    const dir = mkdtempSync(join(tmpdir(), 'mpd-worker-cache-dir-'));
    tempDirs.push(dir);
    // Nothing listens on port 1: the registration fails, and is logged with its URL.
    const run = cli(
      [
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--orchestrator',
        'http://ci:pa55word@127.0.0.1:1/?token=t0ken',
        '--cache-dir',
        'spec-cache-a1',
      ],
      { INIT_CWD: dir },
    );
    try {
      await run.listeningUrl();
      expect(existsSync(join(dir, 'spec-cache-a1'))).toBe(true);
      expect(existsSync('spec-cache-a1')).toBe(false);
      await vi.waitFor(() => expect(run.stderr()).toContain('registration failed'), { timeout: 20_000, interval: 50 });
      const { code } = await run.stop('SIGTERM');
      expect(code).toBe(0);
      const failed = run.stderrLogs().find((line) => line.msg === 'registration failed; retrying');
      expect(failed?.error).toMatch(/^Unreachable: POST http:\/\/\*\*\*@127\.0\.0\.1:1\//);
      expect(run.output()).not.toMatch(/pa55word|t0ken/);
    } finally {
      await run.stop('SIGKILL');
      rmSync('spec-cache-a1', { recursive: true, force: true });
    }
  });

  it('exits 2 naming --cache-dir (MPD_CACHE_DIR) for a cache directory it cannot make', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpd-worker-cache-'));
    tempDirs.push(dir);
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    // Checked with --orchestrator only (the cache serves artifacts); nothing listens on port 1.
    const run = cli(['--port', '0', '--orchestrator', 'http://127.0.0.1:1', '--cache-dir', join(file, 'cache')]);
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain(
      `Invalid setting --cache-dir (MPD_CACHE_DIR): cannot use the cache directory ${join(file, 'cache')}: ENOTDIR`,
    );
    expect(run.stdout()).toBe('');
  });

  // Exit 2 for an unknown flag followed by an argument (`--bogus 1`) among them.
  it('names an unknown flag exactly, without its value, in one line and a pointer to --help, as the orchestrator does', async () => {
    // In this process (two process starts until round V), as the refusals above.
    expect({
      bogus: await answered([...UNKNOWN_FLAGS.bogus]),
      nearMiss: await answered([...UNKNOWN_FLAGS.nearMiss]),
    }).toEqual(unknownFlagAnswers('mpd-worker'));
  });

  it('exits 2 for an extra argument', async () => {
    const extra = await answered(['--port', '0', 'extra']);
    expect(extra.exitCode).toBe(2);
    expect(extra.stderr).toContain('too many arguments');
    expect(extra.stdout).toBe('');
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
        // One module at a time here: one module host, not one per core (a start each).
        '--slots',
        '1',
        // No orchestrator, no token: the test calls execute itself.
        '--open',
      ],
      {
        INIT_CWD: dir,
      },
    );
    const line = await run.firstLine();
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

    const { code, ms } = await run.stop();
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5_000);
    // A worker and its module host load the pipeline with tsx: past 20 s beside another copy of
    // the suite at load 20-37.
  }, 60_000);
});

describe('mpd-worker CLI with TLS', () => {
  let certs: TestCertificates;
  beforeAll(async () => {
    certs = await makeTestCertificates();
  });
  afterAll(() => certs?.remove());

  it('--tls-cert and --tls-key (relative to INIT_CWD) serve HTTPS; --tls-client-ca requires a client certificate', async () => {
    const run = cli(
      [
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--tls-cert',
        'server.crt',
        '--tls-key',
        'server.key',
        '--log-level',
        'silent',
      ],
      { INIT_CWD: certs.dir, MPD_TLS_CLIENT_CA: certs.files.caCert },
    );
    const url = await run.listeningUrl();
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const withCert = createWorkerClient({
      baseUrl: url,
      tls: { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey },
    });
    const withoutCert = createWorkerClient({ baseUrl: url, tls: { ca: certs.caCert } });
    try {
      expect((await withCert.health.get()).status).toBe(200);
      const refused = await withoutCert.health.get().catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(MpdClientError);
      // The TLS 1.3 refusal: a close before the first byte (see @mpd/client's ConnectionLost).
      expect(refused).toMatchObject({ code: 'ConnectionLost', errno: 'UND_ERR_SOCKET' });
    } finally {
      await Promise.all([withCert.close(), withoutCert.close()]);
    }
    expect((await run.stop()).code).toBe(0);
  });

  it('exits 2 naming both flags for --tls-cert without --tls-key', async () => {
    const run = await answered(['--port', '0', '--tls-cert', certs.files.serverCert]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('Invalid setting --tls-cert (MPD_TLS_CERT): needs --tls-key (MPD_TLS_KEY) too');
    expect(run.stdout).toBe('');
  });

  it('exits 2 naming the flag and the variable for a missing file', async () => {
    const run = await answered(
      ['--port', '0', '--tls-cert', certs.files.serverCert, '--tls-key', 'no-such.key'],
      {},
      certs.dir,
    );
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain(
      `Invalid setting --tls-key (MPD_TLS_KEY): cannot read ${join(certs.dir, 'no-such.key')}: no such file`,
    );
    expect(run.stdout).toBe('');
  });

  it('warns on stderr when it serves plain HTTP, in open mode without any token, on a non-loopback address', async () => {
    const run = cli(['--port', '0', '--host', '0.0.0.0', '--id', 'w-open', '--log-level', 'warn', '--open']);
    await run.listeningUrl();
    // The host bound, and the endpoint it advertises (the machine's name).
    expect(run.stdout()).toBe(
      `mpd worker w-open listening on ${await run.listeningUrl()} (the orchestrator calls it at http://${hostname()}:${new URL(await run.listeningUrl()).port})\n`,
    );
    expect(await run.listeningUrl()).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
    expect((await run.stop()).code).toBe(0);
    const warnings = run
      .stderr()
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { msg: string }).msg);
    expect(warnings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^serving plain HTTP on a non-loopback address/),
        expect.stringMatching(/^no token on a non-loopback address/),
        expect.stringMatching(/^open mode \(--open\)/),
      ]),
    );
  });

  it('refuses a worker id that a URL path would read as something else, exit code 2', async () => {
    const run = await answered(['--port', '0', '--host', '127.0.0.1', '--id', 'runner#2']);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain(
      'Invalid setting --id (MPD_WORKER_ID): must be 1-128 letters, digits and . _ ~ -, starting with a letter or digit, got "runner#2"',
    );
    expect(run.stdout).toBe('');
  });
});
