/** Node's timers overflow past 2^31 - 1 ms (about 24.8 days) and fire at once: re-arm in steps. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Like an unref'd `setTimeout`, for any delay (module timeouts can be days long). */
export function longTimeout(callback: () => void, delayMs: number): { clear(): void } {
  let handle: NodeJS.Timeout;
  const arm = (remaining: number): void => {
    handle = setTimeout(
      () => (remaining > MAX_TIMER_MS ? arm(remaining - MAX_TIMER_MS) : callback()),
      Math.min(remaining, MAX_TIMER_MS),
    );
    handle.unref();
  };
  arm(delayMs);
  return { clear: () => clearTimeout(handle) };
}
