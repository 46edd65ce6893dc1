import type { CliRunOptions } from '@mpd/server-kit/cli';
import { runOrchestratorCli } from '@mpd/orchestrator/cli';
import { fileURLToPath } from 'node:url';
import { cliOf, killLeftovers, packagesLoadedBy, spawnProcess } from '@mpd/test-kit';
import { runWorkerCli } from '@mpd/worker/cli';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';

// Round R (R4): the worker's and the orchestrator's CLIs answer --help and refuse a command line
// without loading their servers, and load them (after `beforeLoad`, where `mpd` registers
// TypeScript) only once the settings are valid. One file for both commands: the same rule.

// Processes of passing tests have exited; this stops those a failing test left running.
afterAll(() => killLeftovers());

/** The server's libraries: none is needed to answer --help or refuse a command line. */
const SERVER_PACKAGES = ['express', 'body-parser', 'pino', 'helmet', '@ts-rest/core', '@ts-rest/express', 'undici'];
/** The contract's wire schemas (ES modules of our own): the server's, not the command line's. */
const CONTRACT_SCHEMAS = /packages\/contract\/src\/[^/]*\.(schema|contract)\.ts$/;

/** The two commands, each with its in-process entry. */
const COMMANDS: Array<{
  name: 'worker' | 'orchestrator';
  run: (argv: string[], options: CliRunOptions) => Promise<unknown>;
}> = [
  { name: 'worker', run: runWorkerCli },
  { name: 'orchestrator', run: runOrchestratorCli },
];

describe.each(COMMANDS.map(({ name }) => name))('mpd-%s before its settings are valid', (name) => {
  it('answers --help, an unknown flag and a bad setting without loading the server (express, pino)', async () => {
    const run = (args: string[]) => packagesLoadedBy({ script: cliOf(name), args, cleanEnv: true });
    const [help, unknownFlag, badSetting] = await Promise.all([
      run(['--help']),
      run(['--no-such-flag']),
      run(['--port', 'abc']),
    ]);
    // The same answers as ever (main.spec.ts pins them fully).
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(new RegExp(`^Usage: mpd-${name} \\[options\\]`));
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toContain('--no-such-flag');
    expect(badSetting.code).toBe(2);
    expect(badSetting.stderr).toContain('Invalid setting --port (MPD_PORT)');
    for (const { packages, files } of [help, unknownFlag, badSetting]) {
      // What parses the command line is seen loaded: the list is read.
      expect(packages).toContain('commander');
      for (const name of SERVER_PACKAGES) expect(packages).not.toContain(name);
      // ES modules are seen too: zod (ES-only) is what checks the settings.
      expect(packages).toContain('zod');
      expect(files.filter((file) => CONTRACT_SCHEMAS.test(file))).toEqual([]);
    }
  });
});

/**
 * Loaded at the first call or request that needs them, not by a start (round Z, Z3): undici (the
 * client's HTTP, ~110 files: `@mpd/client`'s undici.ts) and the OpenAPI generator (GET
 * /api/openapi.json: `@mpd/contract/openapi`).
 */
const FIRST_USE_PACKAGES = ['undici', '@ts-rest/open-api', '@anatine/zod-openapi'];

describe.each(COMMANDS.map(({ name }) => name))('mpd-%s started until it listens', (name) => {
  it('loads its server but not undici or the OpenAPI generator before a first request', async () => {
    const started = await packagesLoadedBy({
      script: cliOf(name),
      args: ['--port', '0', '--host', '127.0.0.1', '--log-level', 'silent'],
      cleanEnv: true,
      untilListening: true,
    });
    expect(started.stdout).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+/);
    // The server is seen loaded: the list is read.
    for (const loaded of ['express', '@ts-rest/express', 'pino']) expect(started.packages).toContain(loaded);
    for (const lazy of FIRST_USE_PACKAGES) expect(started.packages).not.toContain(lazy);
  });
});

/** A pipeline file of one module (the worker's test fixture), to start a command with `--pipeline`. */
const PIPELINE = fileURLToPath(new URL('../../worker/test/fixtures/tier-up.pipeline.ts', import.meta.url));

// Round AC (round AA's AA5 redone): tsx is registered (`beforeLoad`) only for a pipeline file,
// after the server's own modules are loaded, so that they do not go through its loader hooks.
// Seen in the CLIs' bundles (the tests' way to start a CLI: `cliBundle`), which carry the server
// and load tsx only when their `beforeLoad` imports it; under MPD_TEST_CLI_SOURCES=1 every start
// is under tsx already, so there is nothing to see.
describe.skipIf(process.env.MPD_TEST_CLI_SOURCES === '1').each(COMMANDS.map(({ name }) => name))(
  'mpd-%s started until it listens, from its bundle',
  (name) => {
    it('loads tsx only when given a pipeline file', async () => {
      const args = ['--port', '0', '--host', '127.0.0.1', '--log-level', 'silent'];
      const withPipeline = [...args, '--pipeline', PIPELINE, ...(name === 'worker' ? ['--slots', '1'] : [])];
      const [plain, piped] = await Promise.all([
        packagesLoadedBy({ script: cliOf(name), args, cleanEnv: true, untilListening: true, sources: false }),
        packagesLoadedBy({
          script: cliOf(name),
          args: withPipeline,
          cleanEnv: true,
          untilListening: true,
          sources: false,
        }),
      ]);
      for (const started of [plain, piped]) expect(started.stdout).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+/);
      expect(plain.packages).not.toContain('tsx');
      expect(piped.packages).toContain('tsx');
    });
  },
);

/** What `process.exit` threw in place of exiting, with its code. */
class Exited extends Error {
  constructor(readonly code: number | undefined) {
    super(`process.exit(${code})`);
  }
}
/** What the test's `beforeLoad` throws: the command goes no further (nothing is loaded or started). */
class Stopped extends Error {}

describe.each(COMMANDS.map(({ name, run }) => [name, run] as const))(
  'mpd-%s: beforeLoad (the mpd command registers TypeScript there)',
  (name, run) => {
    afterEach(() => vi.restoreAllMocks());

    /** Runs the command in this process: its exits and its help and messages stopped at the process's edge. */
    async function ran(argv: string[]): Promise<{ beforeLoadCalls: number; outcome: unknown }> {
      vi.spyOn(process, 'exit').mockImplementation((code) => {
        throw new Exited(code === undefined || code === null ? undefined : Number(code));
      });
      vi.spyOn(process.stdout, 'write').mockReturnValue(true);
      vi.spyOn(process.stderr, 'write').mockReturnValue(true);
      let beforeLoadCalls = 0;
      const outcome = await run(argv, {
        beforeLoad: () => {
          beforeLoadCalls++;
          throw new Stopped();
        },
      }).catch((error: unknown) => error);
      vi.restoreAllMocks();
      return { beforeLoadCalls, outcome };
    }

    it('is not called for --help, an unknown flag or a bad setting, which exit as before', async () => {
      for (const [argv, code] of [
        [['--help'], 0],
        [['--no-such-flag'], 2],
        [['--port', 'abc'], 2],
      ] as const) {
        const { beforeLoadCalls, outcome } = await ran([...argv]);
        expect(outcome, argv.join(' ')).toEqual(new Exited(code));
        expect(beforeLoadCalls, argv.join(' ')).toBe(0);
      }
    });

    it('is called once the settings are valid, before the pipeline file is loaded', async () => {
      const { beforeLoadCalls, outcome } = await ran([
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--pipeline',
        'no-such.ts',
      ]);
      expect(beforeLoadCalls).toBe(1);
      // Thrown by beforeLoad: the missing pipeline file was not looked for yet (it exits 2 otherwise).
      expect(outcome).toBeInstanceOf(Stopped);
    });
  },
);

/**
 * Round AD: undici's ~110 files cost more CPU when loaded through tsx's hooks (an installed
 * worker until registered: 892 against 771 ms). A command that is about to call loads it before
 * `beforeLoad` registers tsx: a worker with an orchestrator (it registers as soon as it listens)
 * and an orchestrator with a pipeline (its run calls the workers). Each case in a process of its
 * own (test/fixtures/before-load-probe.ts), where nothing loaded undici before.
 */
const PROBE = fileURLToPath(new URL('./fixtures/before-load-probe.ts', import.meta.url));

describe('the HTTP client (undici) at beforeLoad', () => {
  const probe = async (args: string[]): Promise<{ atStart: boolean; atBeforeLoad: boolean }> => {
    const run = spawnProcess({ script: PROBE, args, cleanEnv: true });
    const code = await run.exited;
    expect(code, run.stderr()).toBe(0);
    return JSON.parse(run.stdout().trim()) as { atStart: boolean; atBeforeLoad: boolean };
  };
  const LISTEN = ['--port', '0', '--host', '127.0.0.1', '--pipeline', 'no-such.ts'];

  it('is loaded for a worker that will register and for an orchestrator that will run, not for a worker without an orchestrator', async () => {
    const [worker, orchestrator, alone] = await Promise.all([
      probe(['worker', ...LISTEN, '--orchestrator', 'http://127.0.0.1:9']),
      probe(['orchestrator', ...LISTEN]),
      probe(['worker', ...LISTEN]),
    ]);
    expect(worker).toEqual({ atStart: false, atBeforeLoad: true });
    expect(orchestrator).toEqual({ atStart: false, atBeforeLoad: true });
    expect(alone).toEqual({ atStart: false, atBeforeLoad: false });
  });
});
