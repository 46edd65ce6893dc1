/**
 * A clock that moves only when a test says so, for code that takes an injected clock of the
 * shape `{ now(): number; after(ms, callback): () => void }` (the orchestrator's `RunClock`):
 * tests about backoff, waits and expiry then depend on no wall-clock race.
 *
 * ```ts
 * const clock = new ManualClock();
 * const running = runPipeline({ ...options, clock });
 * await clock.advance(250); // fires every timer due by then, in order, letting promises settle
 * ```
 */
export class ManualClock {
  #now: number;
  #timers: { at: number; order: number; callback: () => void }[] = [];
  #order = 0;

  /** @param start the time it starts at, in epoch ms */
  constructor(start = Date.parse('2025-09-30T10:00:00Z')) {
    this.#now = start;
  }

  /** The current time, in epoch ms. */
  now(): number {
    return this.#now;
  }

  /** Calls `callback` once the clock has been advanced `ms` from now; returns a function that cancels it. */
  after(ms: number, callback: () => void): () => void {
    const timer = { at: this.#now + Math.max(0, ms), order: this.#order++, callback };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((candidate) => candidate !== timer);
    };
  }

  /** How many timers are waiting. */
  get pending(): number {
    return this.#timers.length;
  }

  /**
   * Moves the clock `ms` forward, firing each timer due by then at its time, in order, and
   * letting promises and I/O callbacks settle after each (and before the first).
   */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await settle();
    for (;;) {
      const due = this.#timers.filter((timer) => timer.at <= end).sort((a, b) => a.at - b.at || a.order - b.order)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((timer) => timer !== due);
      this.#now = due.at;
      due.callback();
      await settle();
    }
    this.#now = end;
    await settle();
  }
}

/** Lets pending promise callbacks and I/O callbacks run. */
async function settle(): Promise<void> {
  for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
}
