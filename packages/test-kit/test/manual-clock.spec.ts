import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/index.js';

describe('ManualClock', () => {
  it('fires timers only when advanced past them, in order, at their time', async () => {
    const clock = new ManualClock(1_000);
    const fired: [string, number][] = [];
    clock.after(300, () => fired.push(['b', clock.now()]));
    clock.after(100, () => fired.push(['a', clock.now()]));
    const cancel = clock.after(200, () => fired.push(['cancelled', clock.now()]));
    cancel();
    await clock.advance(99);
    expect(fired).toEqual([]);
    await clock.advance(1_000);
    expect(fired).toEqual([
      ['a', 1_100],
      ['b', 1_300],
    ]);
    expect(clock.now()).toBe(2_099);
    expect(clock.pending).toBe(0);
  });

  it('fires timers set by timers and by promises that settle meanwhile', async () => {
    const clock = new ManualClock();
    const start = clock.now();
    const fired: number[] = [];
    const sleep = (ms: number) => new Promise<void>((resolve) => clock.after(ms, resolve));
    void (async () => {
      for (let i = 0; i < 3; i++) {
        await sleep(100);
        fired.push(clock.now() - start);
      }
    })();
    await clock.advance(250);
    expect(fired).toEqual([100, 200]);
    await clock.advance(50);
    expect(fired).toEqual([100, 200, 300]);
  });
});
