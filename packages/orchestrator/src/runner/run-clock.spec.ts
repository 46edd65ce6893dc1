import { ManualClock } from '@mpd/test-kit';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RunTimers, systemClock } from './run-clock.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('RunTimers', () => {
  it('sleeps on its clock; clear ends every sleep (false) and cancels every timer', async () => {
    const clock = new ManualClock();
    const timers = new RunTimers(clock);
    const woke: boolean[] = [];
    void timers.sleep(100).then((value) => woke.push(value));
    let fired = 0;
    timers.after(50, () => fired++);
    timers.after(500, () => fired++);
    await clock.advance(100);
    expect(woke).toEqual([true]);
    expect(fired).toBe(1);
    void timers.sleep(1_000).then((value) => woke.push(value));
    timers.clear();
    await clock.advance(0);
    expect(woke).toEqual([true, false]);
    expect(clock.pending).toBe(0);
    expect(timers.signal.aborted).toBe(true);
    timers.after(1, () => fired++); // after clear: never
    await clock.advance(10_000);
    expect(fired).toBe(1);
    expect(await timers.sleep(1)).toBe(false);
  });

  it('a sleep ends early, false, when its signal aborts', async () => {
    const clock = new ManualClock();
    const timers = new RunTimers(clock);
    const controller = new AbortController();
    const sleeping = timers.sleep(1_000, controller.signal);
    controller.abort();
    expect(await sleeping).toBe(false);
    expect(clock.pending).toBe(0);
  });
});

describe('systemClock', () => {
  it('fires a delay past 2^31 - 1 ms (about 24.8 days) when it is due, not after 1 ms', () => {
    vi.useFakeTimers();
    let fired = false;
    systemClock.after(2 ** 31 + 5_000, () => (fired = true));
    vi.advanceTimersByTime(2 ** 31 - 1);
    expect(fired).toBe(false);
    vi.advanceTimersByTime(5_000);
    expect(fired).toBe(false);
    vi.advanceTimersByTime(1);
    expect(fired).toBe(true);
  });
});
