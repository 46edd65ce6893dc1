import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, vi } from 'vitest';
import { ConsoleCapture } from './console-capture.js';
import { splitLines } from './module-output.js';

// The worker's own console.log, as the capture finds it when it installs itself (at its first
// run): kept for the whole file, as the capture keeps it.
const own = vi.spyOn(console, 'log').mockImplementation(() => undefined);

/** A capture whose lines are kept as `stream: text`. */
function capturing(): { capture: ConsoleCapture; lines: string[] } {
  const lines: string[] = [];
  const capture = new ConsoleCapture((stream, block) => {
    for (const line of splitLines(block)) lines.push(`${stream}: ${line}`);
  });
  return { capture, lines };
}

describe('ConsoleCapture (console.* of modules in the worker process)', () => {
  it('two executions at once: each console line goes to the execution it was printed from, across awaits and timers', async () => {
    const a = capturing();
    const b = capturing();
    const writer = (name: string) => async () => {
      for (let index = 0; index < 5; index++) {
        console.log(`${name} log ${index}`);
        await sleep(1);
        setTimeout(() => console.error(`${name} timer ${index}`), 0);
      }
      await sleep(20);
      console.warn(name, { index: 'done' });
    };
    await Promise.all([a.capture.run(writer('a')), b.capture.run(writer('b'))]);
    for (const [name, { lines }] of [
      ['a', a],
      ['b', b],
    ] as const) {
      expect(lines.filter((line) => line.startsWith('stdout'))).toEqual(
        Array.from({ length: 5 }, (_, index) => `stdout: ${name} log ${index}`),
      );
      expect(lines.filter((line) => line.includes('timer'))).toEqual(
        Array.from({ length: 5 }, (_, index) => `stderr: ${name} timer ${index}`),
      );
      expect(lines.at(-1)).toBe(`stderr: ${name} { index: 'done' }`);
    }
  });

  it("outside any execution, and once its execution ended, console.* writes to the worker's own console", async () => {
    own.mockClear();
    const { capture, lines } = capturing();
    let later: (() => void) | undefined;
    capture.run(() => {
      console.log('inside');
      later = () => console.log('after the end');
    });
    console.log('outside');
    capture.end();
    capture.run(() => later!());
    expect(lines).toEqual(['stdout: inside']);
    expect(own.mock.calls).toEqual([['outside'], ['after the end']]);
  });
});
