import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  cliOf,
  duplicateJsonKeys,
  killLeftovers,
  processTree,
  spawnProcess,
  TEST_NODE_FLAGS,
  TSX_LOADER,
  testNodeFlags,
  watchProcessTree,
} from '../src/index.js';

const fixture = fileURLToPath(new URL('./fixtures/fixture.ts', import.meta.url));
const run = (mode: string, options: { env?: Record<string, string>; cleanEnv?: boolean } = {}) =>
  spawnProcess({ script: fixture, args: [mode], ...options });

afterAll(killLeftovers);

describe('spawnProcess', () => {
  it('waits for whole lines: the listening URL, the first line; stop resolves to the exit code', async () => {
    const server = run('serve');
    expect(await server.listeningUrl()).toBe('http://127.0.0.1:4321');
    expect(await server.firstLine()).toBe('fixture listening on http://127.0.0.1:4321');
    await expect
      .poll(() => server.stdout().endsWith('ready\n'), { timeout: 5_000, interval: 20, message: 'ready' })
      .toBe(true);
    const { code, ms } = await server.stop();
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5_000);
    expect(server.stderr()).toBe('starting\n');
    expect(server.output()).toBe('starting\nfixture listening on http://127.0.0.1:4321\nready\n');
  });

  it('rejects with the output when the process exits before printing', async () => {
    const failing = run('fail');
    await expect(failing.listeningUrl()).rejects.toThrow(/exited with 3 before listening:\ncannot start/);
    await expect(failing.firstLine()).rejects.toThrow('exited 3 before printing: cannot start');
    expect(await failing.exited).toBe(3);
  });

  it('cleanEnv drops the inherited MPD_* variables and INIT_CWD, keeping those of env', async () => {
    vi.stubEnv('MPD_INHERITED', 'x');
    vi.stubEnv('INIT_CWD', '/tmp');
    try {
      const inherited = run('env', { env: { MPD_GIVEN: '1' } });
      expect(JSON.parse(await inherited.firstLine())).toEqual(
        expect.arrayContaining(['INIT_CWD', 'MPD_GIVEN', 'MPD_INHERITED']),
      );
      const clean = run('env', { env: { MPD_GIVEN: '1' }, cleanEnv: true });
      expect(JSON.parse(await clean.firstLine())).toEqual(['MPD_GIVEN']);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it("starts node with this V8's test flags (V8 11: the tier-up delayed as a module host delays it), before tsx's loader (@mpd/cli's tsx-loader.mjs)", async () => {
    const execArgv = JSON.parse(await run('exec-argv').firstLine()) as string[];
    const flags = testNodeFlags();
    if (process.versions.v8.startsWith('11.')) expect(flags).toEqual(['--interrupt-budget=1081344']);
    expect(execArgv.slice(0, flags.length + 1)).toEqual([...flags, '--import']);
    expect(execArgv[flags.length + 1]).toBe(TSX_LOADER);
    expect(TSX_LOADER).toMatch(/\/packages\/cli\/tsx-loader\.mjs$/);
  });

  it('gives flags only to a V8 it has them for (an unknown V8 flag stops node)', () => {
    expect(testNodeFlags('11.3.244.8-node.33')).toEqual(TEST_NODE_FLAGS[11]);
    expect(testNodeFlags('12.4.254.21-node.33')).toEqual([]);
    expect(testNodeFlags('13.6.233.10-node.18')).toEqual([]);
    expect(testNodeFlags('not a version')).toEqual([]);
  });

  it('stop(signal, killAfterMs) SIGKILLs a process that ignores the signal', async () => {
    const stubborn = run('stubborn');
    await stubborn.listeningUrl();
    const { code } = await stubborn.stop('SIGTERM', 200);
    expect(code).toBeNull();
    expect(stubborn.child.signalCode).toBe('SIGKILL');
  });

  it('killLeftovers SIGKILLs what is still running', async () => {
    const leftover = run('serve');
    await leftover.listeningUrl();
    killLeftovers();
    expect(await leftover.exited).toBeNull();
    expect(leftover.child.signalCode).toBe('SIGKILL');
  });
});

describe('watchProcessTree', () => {
  it('finds what a process left running once it exited (its child, reparented, by its group); killLeftovers kills it', async () => {
    const parent = run('orphan');
    const watch = watchProcessTree(parent.child.pid!);
    const orphan = Number(await parent.firstLine());
    expect(await parent.exited).toBe(0);
    const left = watch.leftovers();
    expect(left.map((entry) => [entry.pid, entry.command, entry.pgid])).toEqual([[orphan, 'sleep', parent.child.pid]]);
    killLeftovers();
    await expect
      .poll(() => watchProcessTree(orphan).seen(), { timeout: 5_000, interval: 20, message: 'the orphan killed' })
      .toEqual([]);
  });

  it('finds nothing once a process and its tree are gone', async () => {
    const server = run('serve');
    const watch = watchProcessTree(server.child.pid!);
    await server.listeningUrl();
    expect(watch.seen().map((entry) => entry.pid)).toEqual([server.child.pid]);
    expect((await server.stop()).code).toBe(0);
    // Polled: a helper child that ends on its parent's exit (tsx's esbuild service) may outlive it by moments.
    await expect.poll(() => watch.leftovers(), { timeout: 15_000, interval: 250 }).toEqual([]);
  });
});

describe('duplicateJsonKeys', () => {
  it('names each key repeated in the same object, at any depth, escapes and strings that look like JSON included', () => {
    expect(
      duplicateJsonKeys(
        '{"a":1,"b":{"c":"x\\"y","c":2},"d":[{"e":1,"e":2},{"f":[{"g":1,"g":"}"}]}],"a":"{\\"a\\":1}"}',
      ),
    ).toEqual(['b.c', 'd[].e', 'd[].f[].g', 'a']);
    expect(duplicateJsonKeys('{"pid":1,"x":{"pid":2},"y":[{"pid":3},{"pid":4}]}')).toEqual([]);
  });
});

describe('cliOf', () => {
  it("is the mpd command from packages/cli's bin, and the servers' development entries", () => {
    expect(cliOf('mpd')).toMatch(/packages\/cli\/src\/main\.ts$/);
    expect(cliOf('orchestrator')).toMatch(/packages\/orchestrator\/src\/cli\/main\.ts$/);
    expect(cliOf('worker')).toMatch(/packages\/worker\/src\/cli\/main\.ts$/);
    for (const command of ['mpd', 'orchestrator', 'worker'] as const) expect(existsSync(cliOf(command))).toBe(true);
  });
});

describe('the CLIs started from their bundles (cliBundle, round Z)', () => {
  it('start from one bundle per test process, built from the sources, answering as the sources do; `sources: true` starts the sources under tsx', async () => {
    for (const command of ['worker', 'orchestrator'] as const) {
      const bundled = spawnProcess({ script: cliOf(command), args: ['--help'], cleanEnv: true });
      const fromSources = spawnProcess({ script: cliOf(command), args: ['--help'], cleanEnv: true, sources: true });
      expect([await bundled.exited, await fromSources.exited]).toEqual([0, 0]);
      expect(bundled.stdout()).toBe(fromSources.stdout());
      expect(bundled.stdout()).toMatch(new RegExp(`^Usage: mpd-${command} \\[options\\]`));
      const bundleFile = bundled.child.spawnargs.find((arg) => arg.endsWith(`${command}.mjs`));
      expect(bundleFile).toMatch(/\/\.cli-bundles\//);
      expect(bundled.child.spawnargs).not.toContain(TSX_LOADER);
      expect(fromSources.child.spawnargs).toEqual(expect.arrayContaining([TSX_LOADER, cliOf(command)]));
      // Built once per process: the next start takes the same file.
      const again = spawnProcess({ script: cliOf(command), args: ['--version'], cleanEnv: true });
      expect(await again.exited).toBe(0);
      expect(again.child.spawnargs).toContain(bundleFile);
    }
  });

  it("keep their sources' paths: a worker's module hosts start from `module-host-main.ts`, with its preload (read against the sources' `import.meta.url`)", async () => {
    const pipeline = fileURLToPath(new URL('../../worker/test/fixtures/tier-up.pipeline.ts', import.meta.url));
    const worker = spawnProcess({
      script: cliOf('worker'),
      args: [
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--open',
        '--log-level',
        'silent',
        '--slots',
        '1',
        '--pipeline',
        pipeline,
      ],
      cleanEnv: true,
    });
    try {
      await worker.listeningUrl();
      const hostMain = fileURLToPath(new URL('../../worker/src/executor/module-host-main.ts', import.meta.url));
      const hostLoader = fileURLToPath(new URL('../../worker/module-host-loader.mjs', import.meta.url));
      await expect
        .poll(() => processTree(worker.child.pid!).some((entry) => entry.commandLine.includes(hostMain)), {
          timeout: 20_000,
          interval: 100,
        })
        .toBe(true);
      expect(
        processTree(worker.child.pid!).find((entry) => entry.commandLine.includes(hostMain))?.commandLine,
      ).toContain(hostLoader);
    } finally {
      await worker.stop('SIGTERM', 10_000);
    }
  });
});
