import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { killLeftovers, spawnProcess } from '@mpd/test-kit';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { RunEvent } from '../runner/index.js';
import { defaultOutputMode } from './output-modes.js';
import { PROGRESS_BLOCK_CHARS, PROGRESS_FLUSH_MS, ProgressPrinter } from './progress.js';

const PENDING_FIXTURE = fileURLToPath(new URL('../../test/fixtures/progress-pending-at-exit.ts', import.meta.url));
afterAll(killLeftovers);

function sink(): { out: Writable; text: () => string; writes: () => number } {
  let text = '';
  let writes = 0;
  const out = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      writes++;
      done();
    },
  });
  return { out, text: () => text, writes: () => writes };
}

const started = (module: string, workerId: string) =>
  ({ type: 'module-started', module, workerId, executionId: `x.${module}.1`, attempt: 1 }) as const;

describe('ProgressPrinter', () => {
  it('plain output (CI): a line per event, and what still runs every interval', () => {
    let now = 0;
    const { out, text } = sink();
    const printer = new ProgressPrinter({ out, tty: false, plainIntervalMs: 30_000, now: () => now });
    printer.event(started('build', 'w1'));
    printer.event(started('lint', 'w2'));
    now = 10_000;
    printer.tick();
    expect(text()).not.toContain('still running');
    now = 31_000;
    printer.tick();
    printer.stop();
    expect(text()).toBe(
      '[mpd] ▶ build on w1\n[mpd] ▶ lint on w2\n[mpd] … still running: build on w1 (31.0s), lint on w2 (31.0s)\n',
    );
    expect(text()).not.toContain('\x1b');
  });

  it('a terminal gets a status line redrawn in place, cleared before each event line and at the end', () => {
    let now = 0;
    const { out, text } = sink();
    const printer = new ProgressPrinter({ out, tty: true, now: () => now });
    printer.event(started('build', 'w1'));
    expect(text()).toBe('[mpd] ▶ build on w1\n⏳ 1 running: build on w1 (0.0s)');
    now = 2_500;
    printer.tick();
    expect(text().endsWith('\r\x1b[K⏳ 1 running: build on w1 (2.5s)')).toBe(true);
    printer.event({
      type: 'module-finished',
      module: 'build',
      result: { name: 'build', status: 'Successful', workerId: 'w1', attempts: [], durationMs: 2_500 },
    });
    printer.stop();
    expect(text().endsWith('\r\x1b[K[mpd] ✔ build Successful on w1 in 2.50s\n')).toBe(true);
  });
});

const output = (module: string, texts: string[], attempt = 1, closed = false): RunEvent => ({
  type: 'output',
  module,
  attempt,
  workerId: 'w1',
  lines: texts.map((text) => ({ time: 0, stream: 'stdout', text })),
  ...(closed ? { closed: true } : {}),
});

describe('ProgressPrinter: module output', () => {
  it('prefixed: each line as it arrives, as [module] line', () => {
    const { out, text } = sink();
    const printer = new ProgressPrinter({ out, tty: false, outputMode: 'prefixed' });
    printer.event(output('build', ['one']));
    printer.event(output('lint', ['two', 'three']));
    printer.stop();
    expect(text()).toBe('[build] one\n[lint] two\n[lint] three\n');
  });

  it('not a terminal: what comes within flushMs of the first text goes out in one write, then', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    try {
      const { out, text, writes } = sink();
      const printer = new ProgressPrinter({ out, tty: false, outputMode: 'prefixed' });
      printer.event(started('build', 'w1'));
      printer.event(output('build', ['one', 'two']));
      vi.advanceTimersByTime(PROGRESS_FLUSH_MS - 1);
      printer.event(started('lint', 'w2'));
      expect(writes()).toBe(0);
      vi.advanceTimersByTime(1);
      expect(writes()).toBe(1);
      expect(text()).toBe('[mpd] ▶ build on w1\n[build] one\n[build] two\n[mpd] ▶ lint on w2\n');
      printer.event(output('lint', ['three']));
      vi.advanceTimersByTime(PROGRESS_FLUSH_MS - 1);
      expect(writes()).toBe(1);
      printer.stop();
      expect(writes()).toBe(2);
      expect(text().endsWith('[lint] three\n')).toBe(true);
      vi.advanceTimersByTime(10 * PROGRESS_FLUSH_MS);
      expect(writes()).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('not a terminal: a flushMs of its own; PROGRESS_BLOCK_CHARS pending go out at once', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    try {
      const { out, text, writes } = sink();
      const printer = new ProgressPrinter({ out, tty: false, outputMode: 'prefixed', flushMs: 1_000 });
      printer.event(output('build', ['one']));
      vi.advanceTimersByTime(999);
      expect(writes()).toBe(0);
      vi.advanceTimersByTime(1);
      expect(text()).toBe('[build] one\n');
      const line = 'x'.repeat(1_000);
      let lines = 0;
      while (writes() === 1) {
        printer.event(output('build', [line]));
        lines++;
      }
      expect(lines).toBe(Math.ceil(PROGRESS_BLOCK_CHARS / '[build] \n'.concat(line).length));
      expect(text().length).toBe('[build] one\n'.length + lines * '[build] \n'.concat(line).length);
      printer.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a terminal: each line at once, no timer', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    try {
      const { out, text } = sink();
      const printer = new ProgressPrinter({ out, tty: true, outputMode: 'prefixed' });
      printer.event(output('build', ['one']));
      expect(text()).toBe('[build] one\n');
      expect(vi.getTimerCount()).toBe(1); // the status line's redraw
      printer.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  // A real process: the text still pending when it exits (process.exit from a second signal, an
  // uncaught exception) is written by the printer's 'exit' listener; stop() was never called.
  it.each([
    ['process.exit', 'exit'],
    ['an uncaught exception', 'throw'],
  ])('not a terminal: what is pending when the process ends by %s still gets out', async (_how, how) => {
    const run = spawnProcess({ script: PENDING_FIXTURE, args: [how] });
    const code = await run.exited;
    expect(code).toBe(how === 'exit' ? 3 : 1);
    expect(run.stdout()).toBe('[mpd] ▶ build on w1\n[build] last words\n');
  });

  it("grouped under GitHub Actions: an attempt's lines together once its log closes, in ::group::, commands in them stopped", async () => {
    const { out, text } = sink();
    const printer = new ProgressPrinter({ out, tty: false, outputMode: 'grouped', ci: 'github-actions', flushMs: 0 });
    printer.event(output('build', ['b1']));
    printer.event(output('lint', ['l1']));
    printer.event(output('build', ['::add-mask::x'], 1, true));
    await sleep(20);
    expect(text()).toMatch(
      /^::group::build on w1\n::stop-commands::([0-9a-f]{16})\nb1\n::add-mask::x\n::\1::\n::endgroup::\n$/,
    );
    printer.event(output('lint', [], 1, true));
    printer.stop();
    expect(text()).toContain('::group::lint on w1\n');
    expect(text().match(/::endgroup::/g)).toHaveLength(2);
  });

  it('grouped under Buildkite: a --- section per attempt; a log never closed is printed at the end', () => {
    const { out, text } = sink();
    const printer = new ProgressPrinter({ out, tty: false, outputMode: 'grouped', ci: 'buildkite' });
    printer.event(output('build', ['b1'], 2));
    expect(text()).toBe('');
    printer.stop();
    expect(text()).toBe('--- build (attempt 2) on w1\nb1\n');
  });

  it('quiet: prints none, but keeps the last lines of the latest attempt for the summary', () => {
    const { out, text } = sink();
    const printer = new ProgressPrinter({ out, tty: false, outputMode: 'quiet' });
    printer.event(output('build', ['old'], 1));
    printer.event(
      output(
        'build',
        Array.from({ length: 25 }, (_, index) => `line ${index}`),
        2,
      ),
    );
    printer.stop();
    expect(text()).toBe('');
    const tail = printer.tailOf('build');
    expect(tail?.attempt).toBe(2);
    expect(tail?.lines.map((line) => line.text)).toEqual(Array.from({ length: 20 }, (_, index) => `line ${index + 5}`));
  });

  it("quiet too: says which attempt's output was cut at the run's end, with the lines that came", () => {
    const { out, text } = sink();
    const printer = new ProgressPrinter({ out, tty: false, outputMode: 'quiet' });
    printer.event({
      type: 'output-incomplete',
      module: 'build',
      attempt: 2,
      workerId: 'w1',
      linesReceived: 1200,
      reason: 'silent',
      waitedMs: 2_000,
    });
    printer.stop();
    expect(text()).toBe(
      '[mpd] ⚠ output of build (attempt 2) on w1 incomplete: 1200 line(s) received, then its worker sent nothing for 2.00s; the rest is dropped\n',
    );
  });

  it('defaults to grouped under GitHub Actions and Buildkite, else prefixed', () => {
    expect(defaultOutputMode({ GITHUB_ACTIONS: 'true' })).toBe('grouped');
    expect(defaultOutputMode({ BUILDKITE: 'true' })).toBe('grouped');
    expect(defaultOutputMode({ CI: 'true' })).toBe('prefixed');
  });
});
