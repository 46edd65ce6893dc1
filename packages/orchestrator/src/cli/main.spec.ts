import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { hostname, networkInterfaces, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  answeredInProcess,
  cliOf,
  killLeftovers,
  spawnProcess,
  type RunningProcess,
  UNKNOWN_FLAGS,
  unknownFlagAnswers,
} from '@mpd/test-kit';
import { afterAll, describe, expect, it } from 'vitest';
import { runOrchestratorCli } from './run-orchestrator-cli.js';

// Processes of passing tests have exited; this stops those a failing test left running.
afterAll(killLeftovers);

/** Runs `mpd-orchestrator` as a real process, with the MPD_* variables (and INIT_CWD) of `env` only. */
const cli = (args: string[], env: Record<string, string> = {}): RunningProcess =>
  spawnProcess({ script: cliOf('orchestrator'), args, env, cleanEnv: true });

/**
 * Runs `mpd-orchestrator ARGS` in this process (`runOrchestratorCli`) with the MPD_* variables of
 * `env` only, for a command line it answers before it loads anything (--help, an unknown flag, a
 * bad setting): its exit code and what it wrote (test-kit's `answeredInProcess`). Those were nine
 * process starts until round V (about a second of CPU each: node, tsx, commander, zod);
 * `packages/cli/test/cli-light-start.spec.ts` exits such command lines as real processes.
 */
const answered = (args: string[], env: Record<string, string> = {}) => answeredInProcess(runOrchestratorCli, args, env);

describe('mpd-orchestrator CLI', () => {
  it('prints its URL, answers /api/health and exits 0 on SIGTERM', async () => {
    const run = cli(['--port', '0', '--host', '127.0.0.1', '--log-level', 'silent']);
    const line = await run.firstLine();
    expect(line).toMatch(/^mpd orchestrator listening on http:\/\/127\.0\.0\.1:\d+$/);
    const url = line.slice('mpd orchestrator listening on '.length);
    const health = await fetch(`${url}/api/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'healthy', availableWorkers: 0 });
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.stdout()).toBe(`${line}\n`);
  });

  it('prints the host bound (the default 0.0.0.0) and the addresses other machines can use; logs JSON to stderr only', async () => {
    const run = cli([], { MPD_PORT: '0', MPD_HEARTBEAT_INTERVAL: '7' });
    const line = await run.firstLine();
    const [, url, port] =
      /^mpd orchestrator listening on (http:\/\/0\.0\.0\.0:(\d+))( \(from other machines: .+\))?$/.exec(line)!;
    // Every address of this machine that is not loopback or link-local, IPv4 (as it listens on 0.0.0.0).
    const addresses = Object.values(networkInterfaces())
      .flat()
      .filter((entry) => entry && !entry.internal && entry.family === 'IPv4' && !entry.address.startsWith('169.254.'));
    for (const entry of addresses) expect(line).toContain(`http://${entry!.address}:${port}`);
    expect(line).not.toContain('127.0.0.1');
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
    const logs = run.stderrLogs();
    expect(logs.map((log) => log.msg)).toContain('orchestrator listening');
    // The same base fields as the worker's.
    for (const log of logs) {
      expect(log).toMatchObject({ service: 'mpd-orchestrator', hostname: hostname() });
      expect(log.pid).toEqual(expect.any(Number));
    }
  });

  // Also the quiet case of the next test (secrets given by their variables, and --secret-env
  // NAME without a value: no warning), a process of its own until round V.
  it('warns once, in its JSON log, for each setting given by its old name; not for a secret given by its variable', async () => {
    const run = cli(['--port', '0', '--host', '127.0.0.1', '--workdir', '/srv/build', '--secret-env', 'B'], {
      MPD_CATEGORIES: 'build',
      MPD_JOIN_TOKEN: 'join-env-value-0123456789',
    });
    await run.firstLine();
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    const warnings = run.stderrLogs().filter((log) => log.msg.includes('deprecated'));
    expect(warnings.map(({ level, msg, service }) => ({ level, msg, service }))).toEqual([
      {
        level: 'warn',
        service: 'mpd-orchestrator',
        msg: '--workdir (MPD_WORKDIR) is deprecated; use --working-directory (MPD_WORKING_DIRECTORY)',
      },
      {
        level: 'warn',
        service: 'mpd-orchestrator',
        msg: '--categories (MPD_CATEGORIES) is deprecated; use --run-only-categories (MPD_RUN_ONLY_CATEGORIES)',
      },
    ]);
    expect(run.stderrLogs().filter((log) => 'flag' in log)).toEqual([]);
    expect(run.output()).not.toContain('join-env-value-0123456789');
  });

  it('warns once per token or secret given as a flag, naming the flag and its variable, never the value', async () => {
    const join = 'join-flag-value-0123456789';
    const admin = 'admin-flag-value-0123456789';
    const secret = 'secret-env-flag-value-4711';
    // The two started together: each is a process start, seconds on a loaded machine (one
    // after the other, three ran past the test's 20 s there). The quiet case is the test above's.
    const run = cli(['--port', '0', '--host', '127.0.0.1', `--join-token=${join}`, '--admin-token', admin], {
      MPD_SECRET_ENV: `FROM_ENV=${secret}`,
    });
    // --secret-env NAME=VALUE carries a value; NAME alone (the orchestrator's own variable) does not.
    const env = cli(['--port', '0', '--host', '127.0.0.1', '--secret-env', `A=${secret}`, '--secret-env', 'B']);
    await run.firstLine();
    expect((await run.stop('SIGTERM')).code).toBe(0);
    // Picked by their fields, not by the level's spelling (a number or a name).
    const warnings = run.stderrLogs().filter((log) => 'flag' in log);
    expect(warnings.map(({ flag, use, msg }) => ({ flag, use, msg }))).toEqual([
      {
        flag: '--join-token',
        use: 'MPD_JOIN_TOKEN',
        msg: '--join-token puts a secret on the command line, where ps, shell history and tools that echo commands (pnpm, CI logs) show it; set MPD_JOIN_TOKEN instead',
      },
      {
        flag: '--admin-token',
        use: 'MPD_ADMIN_TOKEN',
        msg: '--admin-token puts a secret on the command line, where ps, shell history and tools that echo commands (pnpm, CI logs) show it; set MPD_ADMIN_TOKEN instead',
      },
    ]);
    expect(warnings.every((log) => [40, 'warn'].includes(log.level))).toBe(true);
    for (const value of [join, admin, secret]) expect(run.output()).not.toContain(value);

    await env.firstLine();
    expect((await env.stop('SIGTERM')).code).toBe(0);
    expect(env.stderrLogs().filter((log) => 'flag' in log)).toEqual([
      expect.objectContaining({
        flag: '--secret-env',
        use: 'MPD_SECRET_ENV',
        msg: '--secret-env puts a secret on the command line, where ps, shell history and tools that echo commands (pnpm, CI logs) show it; set MPD_SECRET_ENV instead (one entry per line)',
      }),
    ]);
    expect(env.output()).not.toContain(secret);
  });

  it('sweeps --artifacts-dir at start: a blob unused for longer than --artifact-retention is removed, a newer one kept', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpd-sweep-'));
    const [old, recent] = ['a', 'b'].map((digit) => join(dir, digit.repeat(64)));
    writeFileSync(old!, 'old');
    writeFileSync(recent!, 'recent');
    const twoHoursAgo = (Date.now() - 2 * 3_600_000) / 1000;
    utimesSync(old!, twoHoursAgo, twoHoursAgo);
    const run = cli(['--port', '0', '--host', '127.0.0.1', '--artifacts-dir', dir, '--artifact-retention', '1h']);
    await run.firstLine(); // printed once the start (and its sweep) is done
    expect(readdirSync(dir)).toEqual([basename(recent!)]);
    expect(run.stderrLogs()).toContainEqual(
      expect.objectContaining({ msg: expect.stringContaining('retention'), removed: 1 }),
    );
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    rmSync(dir, { recursive: true, force: true });
  });

  it('exits 2 naming --port for --port abc', async () => {
    const run = await answered(['--port', 'abc']);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "abc"');
    expect(run.stdout).toBe('');
  });

  it('exits 2 naming MPD_PORT for MPD_PORT=abc', async () => {
    const run = await answered([], { MPD_PORT: 'abc' });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/MPD_PORT.*got "abc"/);
  });

  it('exits 2 for an invalid URL-bearing setting without printing a user name, password or query it holds', async () => {
    const cases = [
      [
        ['--artifact-store', 's3://bucket', '--artifact-store-endpoint', 'ftp://key:pa55word@minio:9000/?token=t0ken'],
        'Invalid setting --artifact-store-endpoint (MPD_ARTIFACT_STORE_ENDPOINT): must be an http:// or https:// URL, got "ftp://***@minio:9000/?…"',
      ],
      [
        ['--artifact-store', 's3://key:pa55word@bucket/?token=t0ken'],
        'Invalid setting --artifact-store (MPD_ARTIFACT_STORE): must be s3://bucket',
      ],
      [['--allowed-worker-hosts', 'https://u:pa55word@x/?token=t0ken'], "'https://***@x/?…' is no address range"],
      [['--env', 'BAD-NAME=postgres://u:pa55word@db/x?token=t0ken'], 'got "BAD-NAME=postgres://***@db/x?…"'],
    ] as const;
    for (const [args, message] of cases) {
      const run = await answered(['--port', '0', ...args]);
      expect(run.exitCode).toBe(2);
      expect(run.stderr).toContain(message);
      expect(run.stdout + run.stderr).not.toMatch(/pa55word|t0ken/);
    }
  });

  // Exit 2 for an unknown flag followed by an argument (`--bogus 1`) among them.
  it('names an unknown flag exactly, without its value, in one line and a pointer to --help, as the worker does', async () => {
    expect({
      bogus: await answered([...UNKNOWN_FLAGS.bogus]),
      nearMiss: await answered([...UNKNOWN_FLAGS.nearMiss]),
    }).toEqual(unknownFlagAnswers('mpd-orchestrator'));
  });

  it('exits 2 naming --pipeline for a missing pipeline file', async () => {
    const run = cli(['--port', '0', '--pipeline', 'no-such.pipeline.ts'], { INIT_CWD: '/tmp' });
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain(
      'Invalid setting --pipeline (MPD_PIPELINE): Pipeline file not found: /tmp/no-such.pipeline.ts',
    );
    expect(run.stdout()).toBe('');
  });

  it('makes --artifacts-dir relative to INIT_CWD (where `pnpm orchestrator` was typed), as every path setting', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpd-orchestrator-artifacts-dir-'));
    const run = cli(['--port', '0', '--host', '127.0.0.1', '--artifacts-dir', 'spec-store-a1'], { INIT_CWD: dir });
    try {
      await run.listeningUrl();
      expect(existsSync(join(dir, 'spec-store-a1'))).toBe(true);
      expect(existsSync('spec-store-a1')).toBe(false);
      expect((await run.stop('SIGTERM')).code).toBe(0);
      // The start line says where, in full.
      const listening = run.stderrLogs().find((line) => line.msg === 'orchestrator listening');
      expect(listening?.artifacts).toEqual({ kind: 'local', dir: join(dir, 'spec-store-a1') });
    } finally {
      await run.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      rmSync('spec-store-a1', { recursive: true, force: true });
    }
  });

  it('exits 2 naming --logs-dir for a logs directory it cannot make, before it listens', async () => {
    // In the package, so that the pipeline file finds @mpd/pipeline.
    const dir = mkdtempSync(join(fileURLToPath(new URL('../..', import.meta.url)), '.logs-dir-spec-'));
    try {
      const pipeline = join(dir, 'one.pipeline.ts');
      writeFileSync(
        pipeline,
        "import { defineModule, definePipeline } from '@mpd/pipeline';\n" +
          "export default definePipeline({ name: 'one', modules: [defineModule({ name: 'a', run: async () => 1 })] });\n",
      );
      const file = join(dir, 'a-file');
      writeFileSync(file, '');
      const run = cli(['--port', '0', '--pipeline', pipeline, '--logs-dir', join(file, 'logs')]);
      expect(await run.exited).toBe(2);
      expect(run.stderr()).toContain(
        `Invalid setting --logs-dir (MPD_LOGS_DIR): cannot use ${join(file, 'logs')}: ENOTDIR`,
      );
      expect(run.stdout()).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exits 1 on a port it cannot listen on, its own line last: after its fatal log line, though that line is still being written (a slow stderr)', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      // Before round J it exited at once: the fatal line, written asynchronously, came after the
      // command's own line or never (1 run in 6 or 8 without the slow stderr; every run with it).
      const run = cli(['--port', String(port), '--host', '127.0.0.1'], {
        NODE_OPTIONS: `--import=${new URL('../../test/fixtures/slow-stderr-writes.mjs', import.meta.url).href}`,
      });
      expect(await run.exited).toBe(1);
      const lines = run.stderr().trimEnd().split('\n');
      expect(lines.at(-1)).toMatch(
        new RegExp(`^mpd-orchestrator: Cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`),
      );
      const logs = lines.slice(0, -1).map((line) => JSON.parse(line) as { level: string; msg: string });
      expect(logs.at(-1)).toMatchObject({ level: 'fatal', msg: 'orchestrator could not start' });
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('--help lists every flag with its environment variable', async () => {
    const run = await answered(['--help']);
    expect(run.exitCode).toBe(0);
    for (const [flag, env] of [
      ['--port', 'MPD_PORT'],
      ['--host', 'MPD_HOST'],
      ['--heartbeat-interval', 'MPD_HEARTBEAT_INTERVAL'],
      ['--heartbeat-timeout', 'MPD_HEARTBEAT_TIMEOUT'],
      ['--pipeline', 'MPD_PIPELINE'],
      ['--min-workers', 'MPD_MIN_WORKERS'],
      ['--log-level', 'MPD_LOG_LEVEL'],
    ]) {
      expect(run.stdout).toContain(flag);
      expect(run.stdout).toContain(env);
    }
  });
});
