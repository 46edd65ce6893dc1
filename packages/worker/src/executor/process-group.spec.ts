import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { groupAlive, groupMembers, signalGroup, stopProcessGroup } from './process-group.js';

/** `script` in bash, in a process group of its own; resolves once bash wrote its first line (the pids it started). */
async function group(script: string): Promise<{ pgid: number; pids: number[] }> {
  const child = spawn('bash', ['-c', script], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  const line = await new Promise<string>((resolve) =>
    child.stdout.once('data', (chunk: Buffer) => resolve(String(chunk))),
  );
  return { pgid: child.pid!, pids: [child.pid!, ...line.trim().split(' ').map(Number)] };
}

describe('process groups', () => {
  it('stops a group whose processes end on SIGTERM at once, grandchildren included', async () => {
    const { pgid, pids } = await group('sleep 30 & echo $!; wait');
    expect(groupMembers(pgid)?.sort()).toEqual(pids.sort());
    const started = performance.now();
    expect(await stopProcessGroup(pgid, 5_000)).toBe('terminated');
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(groupAlive(pgid)).toBe(false);
  });

  it('sends SIGKILL to what ignores SIGTERM once the grace is over, and resolves when it is gone', async () => {
    const { pgid } = await group('trap "" TERM; sleep 30 & echo $!; wait');
    const started = performance.now();
    expect(await stopProcessGroup(pgid, 1_000)).toBe('killed');
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(groupAlive(pgid)).toBe(false);
    expect(await stopProcessGroup(pgid, 1_000)).toBe('terminated'); // nothing left: at once
  });

  it('never signals group 0, 1 or a negative one (kill(-1) would reach every process)', () => {
    for (const pgid of [-1, 0, 1, Number.NaN]) {
      expect(signalGroup(pgid, 'SIGTERM')).toBe(false);
      expect(groupAlive(pgid)).toBe(false);
    }
  });
});
