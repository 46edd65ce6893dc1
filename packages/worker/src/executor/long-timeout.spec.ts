import { afterEach, describe, expect, it, vi } from 'vitest';
import { longTimeout } from './long-timeout.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('longTimeout', () => {
  it('fires after delays longer than a Node timer can hold (2^31 - 1 ms), not at once', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const thirtyDays = 30 * 24 * 60 * 60 * 1000;
    longTimeout(fired, thirtyDays);
    vi.advanceTimersByTime(1_000);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(thirtyDays - 1_001);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it('can be cleared, also after re-arming', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const timer = longTimeout(fired, 2 ** 32);
    vi.advanceTimersByTime(2 ** 31);
    timer.clear();
    vi.advanceTimersByTime(2 ** 32);
    expect(fired).not.toHaveBeenCalled();
  });
});
