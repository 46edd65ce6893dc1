import { AsyncLocalStorage } from 'node:async_hooks';
import { describe, expect, it, vi } from 'vitest';
import { ExecutionStop } from './execution-stop.js';

describe('ExecutionStop', () => {
  it('tells its listeners, then its signal, once, with the first reason', () => {
    const stop = new ExecutionStop();
    const heard: string[] = [];
    stop.signal.addEventListener('abort', () => heard.push(`signal: ${String(stop.signal.reason)}`));
    stop.onAbort(() => heard.push(`listener: ${String(stop.reason)}`));
    stop.abort('timeout');
    stop.abort('cancel');
    expect(heard).toEqual(['listener: timeout', 'signal: timeout']);
    expect(stop.aborted).toBe(true);
  });

  it("a cancel stops it until its module's code ended (codeEnded), then is only kept (heldCancel); a timeout (abort) still stops it", () => {
    const before = new ExecutionStop();
    before.cancel('cancelled');
    expect([before.aborted, before.reason, before.heldCancel]).toEqual([true, 'cancelled', undefined]);

    const after = new ExecutionStop();
    let heard = 0;
    after.onAbort(() => heard++);
    after.codeEnded = true;
    after.cancel('cancelled too late');
    after.cancel('again');
    expect([after.aborted, after.signal.aborted, heard, after.heldCancel]).toEqual([
      false,
      false,
      0,
      'cancelled too late',
    ]);
    after.abort('timeout');
    expect([after.aborted, after.reason, heard]).toEqual([true, 'timeout', 1]);
  });

  it('a held cancel stops it all the same once heldCancelGraceMs passed without its end (ended() first: never)', () => {
    vi.useFakeTimers();
    try {
      const held = new ExecutionStop();
      held.heldCancelGraceMs = 1_000;
      held.codeEnded = true;
      held.cancel('cancelled too late');
      vi.advanceTimersByTime(999);
      held.cancel('again'); // the first cancel's grace: not restarted
      expect(held.aborted).toBe(false);
      vi.advanceTimersByTime(1);
      expect([held.aborted, held.reason, held.signal.reason]).toEqual([
        true,
        'cancelled too late',
        'cancelled too late',
      ]);

      const ended = new ExecutionStop();
      ended.heldCancelGraceMs = 1_000;
      ended.codeEnded = true;
      ended.cancel('cancelled too late');
      ended.ended();
      vi.advanceTimersByTime(5_000);
      expect(ended.aborted).toBe(false);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it("a cancel put to the module's host (askCancel) is held until its verdict: `stopped` stops it with that cancel; `returned` first (codeEnded) leaves it held; the grace stops it without one", () => {
    vi.useFakeTimers();
    try {
      const asked: unknown[] = [];
      const stopped = new ExecutionStop();
      stopped.heldCancelGraceMs = 1_000;
      stopped.askCancel = (reason) => asked.push(reason);
      stopped.cancel('cancelled');
      stopped.cancel('again'); // asked once, the first cancel held
      expect([stopped.aborted, stopped.heldCancel, asked]).toEqual([false, 'cancelled', ['cancelled']]);
      stopped.hostStopped();
      expect([stopped.aborted, stopped.reason]).toEqual([true, 'cancelled']);
      expect(vi.getTimerCount()).toBe(0); // its grace cleared

      // The host had said `returned` (the two crossing): the cancel's outcome is `done`'s.
      const returned = new ExecutionStop();
      returned.heldCancelGraceMs = 1_000;
      returned.askCancel = (reason) => asked.push(reason);
      returned.cancel('crossed');
      returned.codeEnded = true;
      returned.hostStopped(); // a `stopped` after `returned`: not the verdict
      expect(returned.aborted).toBe(false);
      returned.ended();
      vi.advanceTimersByTime(5_000);
      expect([returned.aborted, returned.heldCancel]).toEqual([false, 'crossed']);

      // No verdict: stopped all the same once the grace passed; a `stopped` no one asked for does nothing.
      const silent = new ExecutionStop();
      silent.hostStopped();
      expect(silent.aborted).toBe(false);
      silent.heldCancelGraceMs = 1_000;
      silent.askCancel = () => undefined;
      silent.cancel('unanswered');
      vi.advanceTimersByTime(999);
      expect(silent.aborted).toBe(false);
      vi.advanceTimersByTime(1);
      expect([silent.aborted, silent.reason]).toEqual([true, 'unanswered']);

      // Once ended (its answer known), a cancel is only kept: nothing asked, no grace armed.
      const over = new ExecutionStop();
      over.heldCancelGraceMs = 1_000;
      over.askCancel = () => asked.push('too late');
      over.ended();
      over.cancel('after the end');
      expect([over.aborted, over.heldCancel, vi.getTimerCount()]).toEqual([false, 'after the end', 0]);
      expect(asked).toEqual(['cancelled', 'crossed']);
    } finally {
      vi.useRealTimers();
    }
  });

  it("its timeout (timeOut) is put to the module's host as a cancel is: held until `stopped` (stops it, TimedOut's reason) or the grace; `returned` first leaves it held; at once in-process, once the code ended, or while a cancel is held with no grace; with one, that cancel decides", () => {
    vi.useFakeTimers();
    try {
      const asked: unknown[] = [];
      const stopped = new ExecutionStop();
      stopped.heldCancelGraceMs = 1_000;
      stopped.askCancel = (reason) => asked.push(reason);
      stopped.timeOut('timed out');
      stopped.cancel('cancelled after'); // the timeout is the held stop: not asked again
      expect([stopped.aborted, stopped.heldCancel, asked]).toEqual([false, 'timed out', ['timed out']]);
      stopped.hostStopped();
      expect([stopped.aborted, stopped.reason]).toEqual([true, 'timed out']);
      expect(vi.getTimerCount()).toBe(0);

      // The host had said `returned` (the two crossing): the outcome is `done`'s; none: the grace stops it.
      const returned = new ExecutionStop();
      returned.heldCancelGraceMs = 1_000;
      returned.askCancel = () => undefined;
      returned.timeOut('crossed');
      returned.codeEnded = true;
      returned.ended();
      vi.advanceTimersByTime(5_000);
      expect([returned.aborted, returned.heldCancel]).toEqual([false, 'crossed']);
      const silent = new ExecutionStop();
      silent.heldCancelGraceMs = 1_000;
      silent.askCancel = () => undefined;
      silent.timeOut('unanswered');
      vi.advanceTimersByTime(999);
      expect(silent.aborted).toBe(false);
      vi.advanceTimersByTime(1);
      expect([silent.aborted, silent.reason]).toEqual([true, 'unanswered']);

      // At once: in-process (no host to ask), once its code ended with no grace, while a cancel with no grace waits for its verdict.
      const inProcess = new ExecutionStop();
      inProcess.timeOut('timed out');
      const ended = new ExecutionStop();
      ended.askCancel = () => asked.push('too late');
      ended.codeEnded = true;
      ended.timeOut('timed out');
      const cancelFirst = new ExecutionStop();
      cancelFirst.askCancel = (reason) => asked.push(reason);
      cancelFirst.cancel('cancelled');
      cancelFirst.timeOut('timed out');
      expect([inProcess, ended, cancelFirst].map((stop) => [stop.aborted, stop.reason])).toEqual([
        [true, 'timed out'],
        [true, 'timed out'],
        [true, 'timed out'],
      ]);
      expect(cancelFirst.heldCancel).toBe('cancelled');
      expect(asked).toEqual(['timed out', 'cancelled']);

      // With a grace, a cancel waiting for its verdict decides (round Y, review R2 LOW a): the
      // timeout stops nothing, asks nothing; the cancel's grace, not restarted, stops it with the cancel.
      const waiting = new ExecutionStop();
      waiting.heldCancelGraceMs = 1_000;
      waiting.askCancel = (reason) => asked.push(reason);
      waiting.cancel('cancelled first');
      vi.advanceTimersByTime(600);
      waiting.timeOut('timed out');
      expect([waiting.aborted, waiting.heldCancel]).toEqual([false, 'cancelled first']);
      vi.advanceTimersByTime(399);
      expect(waiting.aborted).toBe(false);
      vi.advanceTimersByTime(1);
      expect([waiting.aborted, waiting.reason]).toEqual([true, 'cancelled first']);
      expect(asked).toEqual(['timed out', 'cancelled', 'cancelled first']);
    } finally {
      vi.useRealTimers();
    }
  });

  it("its timeout once the module's code ended (its host still ending it) is held for the grace, as a cancel then is: ended() first, never stopped; else stopped at the grace's end, with the timeout (or the cancel held before it)", () => {
    vi.useFakeTimers();
    try {
      const asked: unknown[] = [];
      const ending = (): ExecutionStop => {
        const stop = new ExecutionStop();
        stop.heldCancelGraceMs = 1_000;
        stop.askCancel = (reason) => asked.push(reason);
        stop.codeEnded = true;
        return stop;
      };
      // Its `done` within the grace: the outcome stands (round X, W-A M2: it was stopped at once).
      const done = ending();
      done.timeOut('timed out');
      expect([done.aborted, done.heldCancel]).toEqual([false, 'timed out']);
      vi.advanceTimersByTime(999);
      done.ended();
      vi.advanceTimersByTime(5_000);
      expect([done.aborted, vi.getTimerCount()]).toEqual([false, 0]);

      // A host whose end hangs: stopped at the grace's end, with the timeout.
      const hung = ending();
      hung.timeOut('timed out');
      vi.advanceTimersByTime(999);
      expect(hung.aborted).toBe(false);
      vi.advanceTimersByTime(1);
      expect([hung.aborted, hung.reason]).toEqual([true, 'timed out']);

      // A cancel held already (after the code ended): its grace runs on, not restarted; its reason stands.
      const cancelled = ending();
      cancelled.cancel('cancelled too late');
      vi.advanceTimersByTime(500);
      cancelled.timeOut('timed out');
      vi.advanceTimersByTime(499);
      expect(cancelled.aborted).toBe(false);
      vi.advanceTimersByTime(1);
      expect([cancelled.aborted, cancelled.reason]).toEqual([true, 'cancelled too late']);
      expect(asked).toEqual([]); // the host is asked nothing once the code ended
    } finally {
      vi.useRealTimers();
    }
  });

  it('makes its signal only when read, aborted with the reason if it was stopped before', () => {
    const stop = new ExecutionStop();
    stop.abort('cancelled');
    expect(stop.signal.aborted).toBe(true);
    expect(stop.signal.reason).toBe('cancelled');
    let heard = false;
    stop.onAbort(() => (heard = true));
    expect(heard).toBe(true);
  });

  it("aborts its signal within signalAbortsWithin (the module's context), after its own listeners ran where abort was called", () => {
    const stop = new ExecutionStop();
    const context = new AsyncLocalStorage<string>();
    const heard: string[] = [];
    stop.signal.addEventListener('abort', () => heard.push(`signal in ${context.getStore()}`));
    stop.onAbort(() => heard.push(`listener in ${context.getStore()}`));
    stop.signalAbortsWithin = (abort) => context.run('the module', abort);
    stop.abort('cancelled');
    expect(heard).toEqual(['listener in undefined', 'signal in the module']);
    expect(stop.signal).toBeInstanceOf(AbortSignal);
  });
});
