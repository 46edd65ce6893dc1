/**
 * Timers for durations of any length. Node keeps a timer's delay in a signed 32-bit number of
 * milliseconds: a delay over 2^31 − 1 ms (about 24.8 days) fires after 1 ms instead, with only a
 * `TimeoutOverflowWarning` on stderr. Module timeouts, retry backoffs, deadlines, grace periods
 * and heartbeat intervals come from users and from the wire and can be that long, so every one of
 * them is armed here, in steps of at most {@link MAX_TIMER_DELAY_MS}.
 *
 * Durations cross the wire (a module's `timeout`, the heartbeat interval), so the contract
 * carries the one way to wait for them. This file imports nothing: `@mpd/contract/timers` loads
 * no zod or ts-rest, and every package (client, servers, pipeline) can take it.
 */

/** The longest delay a Node timer holds: 2^31 − 1 ms, about 24.8 days (Node's `TIMEOUT_MAX`). */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** A timer armed by {@link longTimeout} or {@link longInterval}. */
export interface LongTimer {
  /**
   * Stops it: the callback is not called (again). Safe to call twice, or after it fired. Call it
   * as a method (`timer.clear()`): {@link longTimeout}'s timer is a class instance, so a detached
   * `clear` (`signal.addEventListener('abort', timer.clear)`) throws a TypeError; pass
   * `() => timer.clear()` instead.
   */
  clear(): void;
}

/** Options of {@link longTimeout} and {@link longInterval}. */
export interface LongTimerOptions {
  /**
   * Let the process exit while the timer is pending (Node's `timer.unref()`).
   * @default false
   */
  unref?: boolean;
}

/**
 * Calls `callback` once, after `delayMs`, like `setTimeout`, for a delay of any length:
 * `Infinity` never fires. A delay that is not a number above 0 (NaN, negative) fires on the next
 * turn of the timers, as `setTimeout` does.
 *
 * ```ts
 * const timer = longTimeout(() => controller.abort(), 40 * 24 * 3_600_000, { unref: true }); // 40 days
 * timer.clear();
 * ```
 */
export function longTimeout(callback: () => void, delayMs: number, options: LongTimerOptions = {}): LongTimer {
  return new LongTimeout(callback, delayMs, options.unref === true);
}

/**
 * {@link longTimeout}'s timer: one object with its methods, where three closures and an object
 * were made per timer (every module's timeout on the worker, every call's deadline: issue 14,
 * round P). The same steps and the same `unref`.
 */
class LongTimeout implements LongTimer {
  #handle: ReturnType<typeof setTimeout> | undefined;
  #cleared = false;

  constructor(
    private readonly callback: () => void,
    delayMs: number,
    private readonly unref: boolean,
  ) {
    this.arm(delayMs);
  }

  arm(remaining: number): void {
    this.#handle = setTimeout(fireStep, Math.min(remaining, MAX_TIMER_DELAY_MS), this, remaining);
    if (this.unref) this.#handle.unref();
  }

  fire(remaining: number): void {
    if (remaining > MAX_TIMER_DELAY_MS) this.arm(remaining - MAX_TIMER_DELAY_MS);
    else this.callback();
  }

  clear(): void {
    if (this.#cleared) return;
    this.#cleared = true;
    clearTimeout(this.#handle);
  }
}

/** A step of a {@link LongTimeout} ended (one function for every timer: `setTimeout` passes the timer and what remained). */
function fireStep(timer: LongTimeout, remaining: number): void {
  timer.fire(remaining);
}

/**
 * Calls `callback` every `intervalMs`, like `setInterval`, for an interval of any length
 * (`Infinity`: never).
 */
export function longInterval(callback: () => void, intervalMs: number, options: LongTimerOptions = {}): LongTimer {
  let current: LongTimer;
  const next = (): void => {
    current = longTimeout(
      () => {
        // Armed again before the call: a callback that throws does not end the interval (as with
        // setInterval), and one that clears it clears the timer just armed.
        next();
        callback();
      },
      intervalMs,
      options,
    );
  };
  next();
  return { clear: () => current.clear() };
}

/**
 * Resolves `true` after `delayMs` (any length), or `false` as soon as `signal` aborts (at once
 * when it already has); never rejects.
 *
 * ```ts
 * if (!(await longSleep(retryInMs, stopSignal))) return; // stopped meanwhile
 * ```
 */
export function longSleep(delayMs: number, signal?: AbortSignal, options: LongTimerOptions = {}): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      timer.clear();
      resolve(false);
    };
    const timer = longTimeout(
      () => {
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      },
      delayMs,
      options,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
