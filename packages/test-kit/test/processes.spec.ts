import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { cliOf, killLeftovers, spawnProcess } from '../src/index.js';

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

describe('cliOf', () => {
  it("is the mpd command from packages/cli's bin, and the servers' development entries", () => {
    expect(cliOf('mpd')).toMatch(/packages\/cli\/src\/main\.ts$/);
    expect(cliOf('orchestrator')).toMatch(/packages\/orchestrator\/src\/cli\/main\.ts$/);
    expect(cliOf('worker')).toMatch(/packages\/worker\/src\/cli\/main\.ts$/);
    for (const command of ['mpd', 'orchestrator', 'worker'] as const) expect(existsSync(cliOf(command))).toBe(true);
  });
});
