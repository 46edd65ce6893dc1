import { cliOf, killLeftovers, packagesLoadedBy } from '@mpd/test-kit';
import { afterAll, describe, expect, it } from 'vitest';

// Processes of passing tests have exited; this stops those a failing test left running.
afterAll(() => killLeftovers());

/** The server's libraries: none is needed to answer --help or refuse a command line. */
const SERVER_PACKAGES = ['express', 'body-parser', 'pino', 'helmet'];

describe('mpd-worker before its settings are valid', () => {
  it('answers --help, an unknown flag and a bad setting without loading the server (express, pino)', async () => {
    const run = (args: string[]) => packagesLoadedBy({ script: cliOf('worker'), args, cleanEnv: true });
    const [help, unknownFlag, badSetting] = await Promise.all([
      run(['--help']),
      run(['--no-such-flag']),
      run(['--port', 'abc']),
    ]);
    // The same answers as ever (main.spec.ts pins them fully).
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: mpd-worker \[options\]/);
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toContain('--no-such-flag');
    expect(badSetting.code).toBe(2);
    expect(badSetting.stderr).toContain('Invalid setting --port (MPD_PORT)');
    for (const { packages } of [help, unknownFlag, badSetting]) {
      // What parses the command line is seen loaded: the list is read.
      expect(packages).toContain('commander');
      for (const name of SERVER_PACKAGES) expect(packages).not.toContain(name);
    }
  });
});
