/**
 * A clock for tests about expiry: real time plus the jumps the test makes
 * ({@link TestClock.advance}). A timeout then passes when the test says so, not whenever a
 * loaded machine stalls longer than a short real timeout (which is how `app.spec.ts` once failed
 * under load); and since it still follows real time, everything else behaves as with `Date.now`.
 *
 * ```ts
 * const clock = new TestClock();
 * const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000, now: clock.now });
 * clock.advance(60_001); // every worker's heartbeat is now past the timeout
 * ```
 */
export class TestClock {
  private offsetMs = 0;

  /** Epoch milliseconds: `Date.now()` plus every {@link TestClock.advance} so far (bound: pass it as is). */
  readonly now = (): number => Date.now() + this.offsetMs;

  /** Moves the clock `ms` milliseconds on, at once. */
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}
