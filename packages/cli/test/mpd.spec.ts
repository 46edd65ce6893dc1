import { readFileSync } from 'node:fs';
import { cliOf, killLeftovers, spawnProcess } from '@mpd/test-kit';
import { afterAll, describe, expect, it } from 'vitest';

/** Runs `mpd ARGS…` as a real process, with the MPD_* variables (and INIT_CWD) of `env` only. */
const mpd = (args: string[], env: Record<string, string> = {}, cwd?: string) =>
  spawnProcess({ script: cliOf('mpd'), args, env, cleanEnv: true, ...(cwd ? { cwd } : {}) });

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

afterAll(killLeftovers);

describe('mpd', () => {
  // The processes of a test are started together, not one after another: each is a process
  // start, seconds on a loaded machine, and in turn they ran past the test's 20 s there.
  it('--version and -V print the version of @mpd/cli', async () => {
    for (const run of ['--version', '-V'].map((flag) => mpd([flag]))) {
      expect(await run.exited).toBe(0);
      expect(run.stdout()).toBe(`${version}\n`);
    }
  });

  it('help and --help list the commands on stdout; no command at all shows it on stderr and exits 2', async () => {
    const runs = [['help'], ['--help']].map((args) => mpd(args));
    const bare = mpd([]);
    for (const run of runs) {
      expect(await run.exited).toBe(0);
      expect(run.stdout()).toMatch(/^Usage: mpd <command>/);
      expect(run.stdout()).toMatch(/^ {2}orchestrator +serve the worker registry/m);
      expect(run.stdout()).toMatch(/^ {2}worker +run a worker/m);
    }
    expect(await bare.exited).toBe(2);
    expect(bare.stdout()).toBe('');
    expect(bare.stderr()).toMatch(/^Usage: mpd <command>/);
  });

  it('worker --help and help worker show the worker command under its mpd name', async () => {
    const runs = [
      ['worker', '--help'],
      ['help', 'worker'],
    ].map((args) => mpd(args));
    const bad = mpd(['worker', '--bogus']);
    const orchestrator = mpd(['orchestrator', '--help']);
    for (const run of runs) {
      expect(await run.exited).toBe(0);
      expect(run.stdout()).toMatch(/^Usage: mpd worker \[options\]/);
      expect(run.stdout()).toContain('--orchestrator');
      // What an operator writing a service unit needs: signals and exit codes.
      expect(run.stdout()).toContain('SIGTERM or SIGINT drains it');
      expect(run.stdout()).toMatch(/Exit codes: 0 .*3 replaced .*130 /s);
    }
    // A bad flag: the error and a one-line hint, not the whole help.
    expect(await bad.exited).toBe(2);
    expect(bad.stderr()).toContain("error: unknown option '--bogus'");
    expect(bad.stderr()).toContain('(mpd worker --help lists the flags)');
    expect(bad.stderr()).not.toContain('Options:');
    expect(await orchestrator.exited).toBe(0);
    expect(orchestrator.stdout()).toMatch(/^Usage: mpd orchestrator \[options\]/);
  });

  it('an unknown command, option or help topic exits 2 naming it and the commands', async () => {
    const cases = [
      {
        args: ['wroker', '--port', '0'],
        message: 'mpd: unknown command "wroker"; the commands are: orchestrator, worker',
      },
      { args: ['--port', '0'], message: 'mpd: unknown option "--port" before a command' },
      // What follows the option's name may be a secret: never printed.
      { args: ['--join-token=s3cret', 'worker'], message: 'mpd: unknown option "--join-token" before a command' },
      { args: ['-ts3cret', 'worker'], message: 'mpd: unknown option "-t" before a command' },
      { args: ['help', 'worke'], message: 'mpd: no help for unknown command "worke"' },
    ];
    const runs = cases.map(({ args }) => mpd(args));
    for (const [index, { message }] of cases.entries()) {
      const run = runs[index]!;
      expect(await run.exited).toBe(2);
      expect(run.stdout()).toBe('');
      expect(run.stderr()).toContain(message);
      expect(run.stderr()).toContain('Run "mpd help" for the commands.');
      expect(run.stderr()).not.toContain('s3cret');
    }
  });

  it('an unknown command word that is no typo of a command is named by its length alone: it may be a secret', async () => {
    const cases = [
      {
        args: ['s3cr3t-token', 'worker'],
        message: 'mpd: unknown command (a word of 12 characters, not shown: it may be a secret)',
      },
      {
        args: ['help', 's3cr3t-token'],
        message: 'mpd: no help for unknown command (a word of 12 characters, not shown',
      },
      // A control sequence is no typo either: nothing of it reaches the terminal.
      { args: ['work\u001b[2Jer'], message: 'mpd: unknown command (a word of 10 characters, not shown' },
      { args: ['Worker'], message: 'mpd: unknown command "Worker"; the commands are: orchestrator, worker' },
    ];
    // Started together: each is a process start, slow on a loaded machine.
    const runs = cases.map(({ args }) => mpd(args));
    for (const [index, { message }] of cases.entries()) {
      const run = runs[index]!;
      expect(await run.exited).toBe(2);
      expect(run.stderr()).toContain(message);
      expect(run.stderr()).not.toMatch(/s3cr3t|\u001b/);
    }
  });

  it("never prints a URL setting's user name, password or query, under either command", async () => {
    const runs = [
      mpd(['worker', '--port', '0', '--orchestrator', 'http://ci:pa55word@orchestrator example/?token=t0ken']),
      mpd(['orchestrator', '--port', '0'], {
        MPD_ARTIFACT_STORE: 's3://bucket',
        MPD_ARTIFACT_STORE_ENDPOINT: 'ftp://key:pa55word@minio:9000/?token=t0ken',
      }),
    ];
    const shown = ['got "http://***@orchestrator example/?…"', 'got "ftp://***@minio:9000/?…"'];
    for (const [index, run] of runs.entries()) {
      expect(await run.exited).toBe(2);
      expect(run.stderr()).toContain(shown[index]);
      expect(run.output()).not.toMatch(/pa55word|t0ken/);
    }
  });

  it("reads relative paths against its working directory, not an inherited INIT_CWD (npm's)", async () => {
    // npm and pnpm set INIT_CWD for the scripts they run, and their children inherit it: a
    // service started from an `npm run` script must not read its paths against npm's directory.
    const here = new URL('.', import.meta.url).pathname;
    const run = mpd(['worker', '--port', '0', '--pipeline', 'missing.pipeline.ts'], { INIT_CWD: '/tmp' }, here);
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain(
      `mpd worker: Invalid setting --pipeline (MPD_PIPELINE): Pipeline file not found: ${here}missing.pipeline.ts`,
    );
  });
});
