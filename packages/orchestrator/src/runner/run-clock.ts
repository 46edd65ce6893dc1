import { setMaxListeners } from 'node:events';
import { longTimeout } from '@mpd/contract/timers';

/**
 * The time a run reads and the timers it sets: the system's by default, a manual one in tests
 * about time (backoff, waits, grace periods), so that no test depends on a wall-clock race.
 */
export interface RunClock {
  /** The current time, in epoch milliseconds. */
  now(): number;
  /** Calls `callback` once, `ms` milliseconds from now; returns a function that cancels it. */
  after(ms: number, callback: () => void): () => void;
}

/** The system's clock: `Date.now`, and timers of any length (`@mpd/contract/timers`: Node fires a delay over 2^31 − 1 ms at once). */
export const systemClock: RunClock = {
  now: () => Date.now(),
  after(ms, callback) {
    const timer = longTimeout(callback, Math.max(0, ms));
    return () => timer.clear();
  },
};

/**
 * The timers of one run on its {@link RunClock}, all cancelled by {@link RunTimers.clear} when
 * the run ends, so that a finished run leaves nothing behind (no backoff still sleeping).
 */
export class RunTimers {
  readonly #pending = new Set<() => void>();
  readonly #cleared = new AbortController();

  constructor(readonly clock: RunClock) {
    // Every sleep and every cancel call of the run listens to it: no leak, however many there are.
    setMaxListeners(0, this.#cleared.signal);
  }

  /** Calls `callback` once after `ms` (unless cleared first); returns a function that cancels it. */
  after(ms: number, callback: () => void): () => void {
    if (this.#cleared.signal.aborted) return () => undefined;
    const cancel = this.clock.after(ms, () => {
      this.#pending.delete(cancel);
      callback();
    });
    this.#pending.add(cancel);
    return () => {
      if (this.#pending.delete(cancel)) cancel();
    };
  }

  /**
   * Resolves `true` after `ms`, or `false` as soon as `signal` aborts or the timers are
   * cleared (the run ended): a loop that sleeps between calls stops there.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      if (signal?.aborted || this.#cleared.signal.aborted) {
        resolve(false);
        return;
      }
      const stop = (): void => {
        cancel();
        signal?.removeEventListener('abort', stop);
        this.#cleared.signal.removeEventListener('abort', stop);
        resolve(false);
      };
      const cancel = this.after(ms, () => {
        signal?.removeEventListener('abort', stop);
        this.#cleared.signal.removeEventListener('abort', stop);
        resolve(true);
      });
      signal?.addEventListener('abort', stop, { once: true });
      this.#cleared.signal.addEventListener('abort', stop, { once: true });
    });
  }

  /** Aborted once the timers are cleared: pass it to calls that must stop with the run. */
  get signal(): AbortSignal {
    return this.#cleared.signal;
  }

  /** Cancels every pending timer and ends every sleep (`false`); later timers never fire. */
  clear(): void {
    this.#cleared.abort();
    for (const cancel of [...this.#pending]) cancel();
    this.#pending.clear();
  }
}
