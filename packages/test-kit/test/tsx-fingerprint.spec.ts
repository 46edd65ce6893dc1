import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { asTsxLoads, tsxLoadsKey } from '../src/index.js';

// test-kit does not depend on @mpd/pipeline: a directory of its own whose node_modules is the
// worker's (which has @mpd/pipeline and tsx) holds the pipeline file, and is the cwd.
const WORKER_MODULES = fileURLToPath(new URL('../../worker/node_modules', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mpd-tsx-loads-'));
symlinkSync(WORKER_MODULES, join(dir, 'node_modules'), 'dir');
const file = join(dir, 'memo.pipeline.ts');

function writePipeline(returned: string): void {
  writeFileSync(
    file,
    [
      `import { defineModule, definePipeline } from '@mpd/pipeline';`,
      `const echo = defineModule({ name: 'echo', run: () => (${JSON.stringify(returned)}) });`,
      `export default definePipeline({ name: 'memo', modules: [echo] });`,
    ].join('\n'),
  );
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('asTsxLoads', () => {
  it('loads a file once per content: the same answer again, a new one once the file changed', () => {
    writePipeline('first');
    const first = asTsxLoads(file, dir);
    expect(first.moduleDigest('echo')).toMatch(/\S/);
    expect(() => first.moduleDigest('absent')).toThrow(RangeError);
    // Memoized: the very object, no second tsx process.
    expect(asTsxLoads(file, dir)).toBe(first);

    writePipeline('second');
    const second = asTsxLoads(file, dir);
    expect(second).not.toBe(first);
    expect(second.moduleDigest('echo')).not.toBe(first.moduleDigest('echo'));
    expect(second.fingerprint).not.toBe(first.fingerprint);
  }, 60_000);

  it('keys by the path, the cwd and the content', () => {
    writePipeline('first');
    const key = tsxLoadsKey(file, dir);
    expect(tsxLoadsKey('memo.pipeline.ts', dir)).toBe(key);
    expect(tsxLoadsKey(file, tmpdir())).not.toBe(key);
    writePipeline('second');
    expect(tsxLoadsKey(file, dir)).not.toBe(key);
  });
});
