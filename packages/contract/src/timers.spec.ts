import { afterEach, describe, expect, it, vi } from 'vitest';
import { longInterval, longSleep, longTimeout, MAX_TIMER_DELAY_MS } from './timers.js';

afterEach(() => {
  vi.useRealTimers();
  // The setTimeout spy of the unref test: the files share their fork's globals (isolate: false).
  vi.restoreAllMocks();
});

const DAY_MS = 24 * 60 * 60 * 1000;

describe('longTimeout', () => {
  it('fires after delays longer than a Node timer can hold (2^31 - 1 ms), not at once', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const thirtyDays = 30 * DAY_MS;
    longTimeout(fired, thirtyDays);
    vi.advanceTimersByTime(1_000);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(thirtyDays - 1_001);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it('fires exactly at the longest delay Node holds, and one past it', () => {
    vi.useFakeTimers();
    const atMax = vi.fn();
    const pastMax = vi.fn();
    longTimeout(atMax, MAX_TIMER_DELAY_MS);
    longTimeout(pastMax, MAX_TIMER_DELAY_MS + 1);
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS - 1);
    expect(atMax).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(atMax).toHaveBeenCalledTimes(1);
    expect(pastMax).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(pastMax).toHaveBeenCalledTimes(1);
  });

  it('can be cleared, also after re-arming', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const timer = longTimeout(fired, 2 ** 32);
    vi.advanceTimersByTime(2 ** 31);
    timer.clear();
    vi.advanceTimersByTime(2 ** 32);
    expect(fired).not.toHaveBeenCalled();
    timer.clear(); // twice is fine
  });

  it('never fires for Infinity', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    longTimeout(fired, Infinity);
    vi.advanceTimersByTime(10 * MAX_TIMER_DELAY_MS);
    expect(fired).not.toHaveBeenCalled();
  });

  it('unrefs its timer when asked, at every step', () => {
    vi.useFakeTimers();
    const unref = vi.spyOn(globalThis, 'setTimeout');
    longTimeout(() => undefined, MAX_TIMER_DELAY_MS + 5, { unref: true });
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS);
    const handles = unref.mock.results.map((result) => result.value as { hasRef(): boolean });
    expect(handles).toHaveLength(2);
    for (const handle of handles) expect(handle.hasRef()).toBe(false);
  });
});

describe('longInterval', () => {
  it('repeats at intervals longer than a Node timer can hold, and stops when cleared from its callback', () => {
    vi.useFakeTimers();
    const interval = 40 * DAY_MS;
    let calls = 0;
    const timer = longInterval(() => {
      calls++;
      if (calls === 3) timer.clear();
    }, interval);
    vi.advanceTimersByTime(interval - 1);
    expect(calls).toBe(0);
    vi.advanceTimersByTime(1);
    expect(calls).toBe(1);
    vi.advanceTimersByTime(interval);
    expect(calls).toBe(2);
    vi.advanceTimersByTime(5 * interval);
    expect(calls).toBe(3);
  });

  it('goes on after a callback that throws', () => {
    vi.useFakeTimers();
    let calls = 0;
    const timer = longInterval(() => {
      calls++;
      throw new Error('boom');
    }, 10);
    expect(() => vi.advanceTimersByTime(10)).toThrow('boom');
    expect(() => vi.advanceTimersByTime(10)).toThrow('boom');
    expect(calls).toBe(2);
    timer.clear();
  });
});

describe('longSleep', () => {
  it('resolves true after a delay past 2^31 - 1 ms, not before', async () => {
    vi.useFakeTimers();
    let done: boolean | undefined;
    void longSleep(30 * DAY_MS).then((value) => (done = value));
    await vi.advanceTimersByTimeAsync(30 * DAY_MS - 1);
    expect(done).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
  });

  it('resolves false when its signal aborts, at once when it already has', async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const sleeping = longSleep(30 * DAY_MS, controller.signal);
    controller.abort();
    expect(await sleeping).toBe(false);
    expect(await longSleep(10, controller.signal)).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });
});
