import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressPrinter } from './progress.js';

function sink(): { out: Writable; text: () => string } {
  let text = '';
  const out = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  return { out, text: () => text };
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
