/**
 * `sameHiddenClass` (`src/hidden-class.ts`): it compares hidden classes, and it switches V8's
 * natives syntax on and off only around its own compile when it was off: a process started with
 * `--allow-natives-syntax` keeps it on after the first check.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { sameHiddenClass } from '../src/hidden-class.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODULE = fileURLToPath(new URL('../src/hidden-class.ts', import.meta.url));

describe('sameHiddenClass', () => {
  it('tells one hidden class from two', () => {
    expect(sameHiddenClass({ a: 1 }, { a: 2 })).toBe(true);
    expect(sameHiddenClass({ a: 1 }, { b: 1 })).toBe(false);
  });

  it('leaves the natives syntax on in a process started with --allow-natives-syntax', { timeout: 60_000 }, () => {
    const script = [
      `const { sameHiddenClass } = await import(${JSON.stringify(MODULE)});`,
      'sameHiddenClass({}, {});',
      "new Function('a', 'return %HaveSameMap(a, a);');",
      "console.log('still on');",
    ].join('\n');
    const ran = spawnSync(
      process.execPath,
      ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: ROOT, encoding: 'utf8', timeout: 50_000 },
    );
    expect({ status: ran.status, stdout: ran.stdout, stderr: ran.stderr }).toEqual({
      status: 0,
      stdout: 'still on\n',
      stderr: '',
    });
  });
});
