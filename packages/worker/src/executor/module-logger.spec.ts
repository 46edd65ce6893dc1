import { createSecretMasker } from '@mpd/server-kit';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LATE_LINES_BURST, LATE_LINES_INTERVAL_MS, toModuleLogger } from './module-logger.js';

/** A worker's logger at `level` writing to `lines`, and a module logger on it whose output is closed (every line late). */
function lateLogger(level: 'debug' | 'info', lines: Record<string, unknown>[], fields: Record<string, unknown> = {}) {
  const log = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line)) }).child(fields);
  const written: string[] = [];
  const output = { write: (_stream: string, text: string) => void written.push(text), end: () => undefined };
  return { logger: toModuleLogger(log, createSecretMasker(['sekret-value-1']), output, () => true), written };
}

describe('toModuleLogger: lines after its module ended', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("keeps each late line's own level, marked late: 'ended' and masked, in the worker's log alone; one the worker's level leaves out is not written", () => {
    const lines: Record<string, unknown>[] = [];
    const { logger, written } = lateLogger('debug', lines);
    logger.debug('tick sekret-value-1');
    logger.info('info', { late: 'mine', token: 'sekret-value-1' });
    logger.warn('warn');
    logger.error('error');
    expect(lines.map(({ level, msg, late }) => ({ level, msg, late }))).toEqual([
      { level: 20, late: 'ended', msg: 'ctx.logger.debug after its module ended (not in its output): tick ***' },
      { level: 30, late: 'ended', msg: 'ctx.logger.info after its module ended (not in its output): info' },
      { level: 40, late: 'ended', msg: 'ctx.logger.warn after its module ended (not in its output): warn' },
      { level: 50, late: 'ended', msg: 'ctx.logger.error after its module ended (not in its output): error' },
    ]);
    // The module's own field named `late` does not pass for the worker's marker.
    expect(lines[1]).toMatchObject({ token: '***', moduleFields: { late: 'mine' } });
    expect(written).toEqual([]);

    const atInfo: Record<string, unknown>[] = [];
    const quiet = lateLogger('info', atInfo).logger;
    for (let index = 0; index < 100; index++) quiet.debug('tick');
    quiet.info('shown');
    expect(atInfo.map(({ level, msg }) => ({ level, msg }))).toEqual([
      { level: 30, msg: 'ctx.logger.info after its module ended (not in its output): shown' },
    ]);
  });

  it(`logs at most ${LATE_LINES_BURST} late lines of an execution per ${LATE_LINES_INTERVAL_MS / 1000} s, then one line at the window's end saying how many more (at the most severe of their levels); each execution has its own share`, () => {
    const lines: Record<string, unknown>[] = [];
    const first = lateLogger('debug', lines, { executionId: 'exec-1' }).logger;
    const second = lateLogger('debug', lines, { executionId: 'exec-2' }).logger;
    const of = (executionId: string) => lines.filter((line) => line.executionId === executionId);
    // A leftover interval logging every 10 ms for a whole window, and some more.
    for (let tick = 0; tick < 3_500; tick++) {
      first[tick === 2_000 ? 'warn' : 'debug'](`tick ${tick}`);
      vi.advanceTimersByTime(10);
    }
    second.info('once');
    const shown = of('exec-1');
    expect(shown.slice(0, LATE_LINES_BURST).map(({ msg }) => msg)).toEqual(
      Array.from(
        { length: LATE_LINES_BURST },
        (_, tick) => `ctx.logger.debug after its module ended (not in its output): tick ${tick}`,
      ),
    );
    // At 30 s, the count of the window's lines not logged, at warn (one of them was); then the
    // next window's first lines.
    expect(shown[LATE_LINES_BURST]).toMatchObject({
      level: 40,
      late: 'ended',
      dropped: 3_000 - LATE_LINES_BURST,
      msg: `${3_000 - LATE_LINES_BURST} more ctx.logger line(s) after its module ended not logged: at most ${LATE_LINES_BURST} per ${LATE_LINES_INTERVAL_MS / 1000} s per execution`,
    });
    expect(shown[LATE_LINES_BURST + 1]).toMatchObject({ level: 20, msg: expect.stringMatching(/: tick 3000$/) });
    expect(shown).toHaveLength(2 * LATE_LINES_BURST + 1);
    // The rest of the second window: told at its end.
    vi.advanceTimersByTime(LATE_LINES_INTERVAL_MS);
    expect(of('exec-1')).toHaveLength(2 * LATE_LINES_BURST + 2);
    expect(of('exec-1').at(-1)).toMatchObject({ level: 20, dropped: 500 - LATE_LINES_BURST });
    // Another execution's leftover is not silenced by the first one's.
    expect(of('exec-2').map(({ msg }) => msg)).toEqual([
      'ctx.logger.info after its module ended (not in its output): once',
    ]);
  });

  it('the line about lines not logged says what is true of each: those its code logged while still running after a cancel, then those after it ended', () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    let running: 'cancelled' | undefined = 'cancelled';
    const output = { write: () => undefined, end: () => undefined };
    const logger = toModuleLogger(
      log,
      createSecretMasker([]),
      output,
      () => true,
      () => running,
    );
    // Answered Cancelled, its code ignoring the signal: a burst, two lines more than the share.
    for (let tick = 0; tick < LATE_LINES_BURST + 2; tick++) logger.info(`still ${tick}`);
    running = undefined; // its code returned
    for (let tick = 0; tick < 3; tick++) logger.info(`after ${tick}`);
    vi.advanceTimersByTime(LATE_LINES_INTERVAL_MS);
    expect(lines.slice(0, LATE_LINES_BURST).every((line) => line.late === 'cancelled')).toBe(true);
    expect(lines.slice(LATE_LINES_BURST).map(({ late, dropped, msg }) => ({ late, dropped, msg }))).toEqual([
      {
        late: 'cancelled',
        dropped: 2,
        msg: `2 more ctx.logger line(s) after its module was cancelled, from its code still running not logged: at most ${LATE_LINES_BURST} per ${LATE_LINES_INTERVAL_MS / 1000} s per execution`,
      },
      {
        late: 'ended',
        dropped: 3,
        msg: `3 more ctx.logger line(s) after its module ended not logged: at most ${LATE_LINES_BURST} per ${LATE_LINES_INTERVAL_MS / 1000} s per execution`,
      },
    ]);
  });
});
