import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeDirectory } from './make-directory.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('makeDirectory', () => {
  it('makes every missing level, leaves what exists, and names a file in the way', async () => {
    const base = await mkdtemp(join(tmpdir(), 'mpd-make-directory-'));
    dirs.push(base);
    await makeDirectory(join(base, 'a', 'b', 'c'));
    expect((await stat(join(base, 'a', 'b', 'c'))).isDirectory()).toBe(true);
    await makeDirectory(join(base, 'a', 'b'));
    await writeFile(join(base, 'file'), 'x');
    await expect(makeDirectory(join(base, 'file', 'under'))).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  it('gives `mode` to the directory asked for when it makes it (mkdir -p -m): not to the parents it makes, not to one that exists', async () => {
    const base = await mkdtemp(join(tmpdir(), 'mpd-make-directory-'));
    dirs.push(base);
    const modeOf = async (path: string) => (await stat(path)).mode & 0o777;
    // The default mode is the umask's (0755 under 022, 0700 under 077): compared with a directory
    // made without a mode, and `mode` 0500 (no owner write), which no usual umask makes of 0777.
    await mkdir(join(base, 'default'));
    const defaultMode = await modeOf(join(base, 'default'));
    expect(defaultMode).not.toBe(0o500);
    await makeDirectory(join(base, 'a', 'b'), 0o500);
    expect(await modeOf(join(base, 'a', 'b'))).toBe(0o500);
    expect(await modeOf(join(base, 'a'))).toBe(defaultMode);
    await makeDirectory(join(base, 'a'), 0o500);
    expect(await modeOf(join(base, 'a'))).toBe(defaultMode);
  });

  it("fails under /proc (where Node's recursive mkdir never settles) instead of hanging", async () => {
    await expect(makeDirectory('/proc/mpd-no-such-directory/below')).rejects.toMatchObject({ code: 'ENOENT' });
  }, 10_000);
});
