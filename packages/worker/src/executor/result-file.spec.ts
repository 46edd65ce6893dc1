/**
 * A module host's result file (`writeResultFile`): a write that fails halfway leaves no partial
 * file in the scratch directory. The failure is a real one: the write runs in a child process
 * whose file size limit (`ulimit -f`, SIGXFSZ ignored) ends it with `EFBIG` after 1 KiB.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

it('removes its partial file when the write fails (a file size limit)', () => {
  const scratchDir = mkdtempSync(join(tmpdir(), 'mpd-result-file-'));
  dirs.push(scratchDir);
  const script = `import('./src/executor/result-file.ts').then(({ writeResultFile }) => writeResultFile(${JSON.stringify(scratchDir)}, 'exec-1', 'x'.repeat(64 * 1024))).then(() => console.log('written'), (error) => console.log(error.code))`;
  const child = spawnSync('bash', ['-c', `trap '' XFSZ; ulimit -f 1; exec node --import tsx -e "$0"`, script], {
    cwd: join(import.meta.dirname, '..', '..'),
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(child.stdout.trim(), child.stderr).toBe('EFBIG');
  expect(readdirSync(scratchDir)).toEqual([]);
}, 60_000);
