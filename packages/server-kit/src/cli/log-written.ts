/**
 * The CLIs' logs are written asynchronously (pino's `destination({ sync: false })`, a
 * sonic-boom): before a command writes its last line to stderr itself (`mpd-worker: …`,
 * `mpd-orchestrator: …`) and before it exits, every log line must be written, the block being
 * written right now too (shared by both CLIs since round J: the orchestrator's exit had the same
 * fault, its `fatal` line after its own last line in 2 of 12 runs).
 * sonic-boom's `flushSync` alone does not do that: while a write is under way in the thread pool
 * it writes the lines queued behind it at once, and that write lands after them, and after a
 * line written next (the review of round I saw it in 6 of 150 runs; pino's own flush at
 * `process.exit` is that `flushSync`). Nor does `flush(cb)` alone: it calls back once the write
 * under way is done and fewer than `minLength` bytes wait, without writing those (measured:
 * 30-40 lines of 170 bytes, the last line came after the first 25).
 */

/**
 * What {@link logWritten} needs of the log's destination (pino's `destination()`, a sonic-boom
 * 4: its `_writing` and `_opening` are not in its types, but are what its own `flush`, `end` and
 * `flushSync` go by; pino 9, which `@mpd/server-kit` depends on, uses sonic-boom 4).
 */
export interface FlushableLog {
  /** Writes what is buffered now, synchronously (not the write under way). */
  flushSync(): void;
  /**
   * sonic-boom's: true while a write is under way in the thread pool (and while the file opens);
   * a `drain` follows once it ends with fewer than `minLength` bytes waiting. Absent: none is.
   */
  readonly _writing?: boolean;
  /** sonic-boom's: true while the file opens; `ready` follows (no `drain` when nothing is buffered). */
  readonly _opening?: boolean;
  /**
   * `drain`: a write ended and none is under way (fewer than `minLength` bytes may still wait);
   * `ready`: the file is open.
   */
  once(event: 'drain' | 'ready', listener: () => void): unknown;
  removeListener(event: 'drain' | 'ready', listener: () => void): unknown;
}

/**
 * How long the command waits for its log to be written before it writes its last line and exits
 * anyway (ms): a log write takes microseconds to milliseconds; a stderr whose reader stopped
 * reading (a full pipe) must not keep a stopping worker alive.
 */
export const LOG_WRITTEN_TIMEOUT_MS = 2_000;

/**
 * Resolves once every line `log` took is written, or after `timeoutMs`, whichever comes first;
 * never rejects. With a write under way (or the file opening) it waits for it to end (`drain`,
 * emitted while no write is under way; `ready`), and then writes what is left synchronously, in
 * order behind it; with none, it writes what is left at once and resolves without waiting. (Not
 * `flush()` and a `drain`: with `minLength` 0, what the orchestrator CLI's destination has, sonic-boom's
 * `flush()` starts nothing and no `drain` comes, so every exit waited the whole timeout.)
 * @param timeoutMs @default {@link LOG_WRITTEN_TIMEOUT_MS}
 */
export function logWritten(log: FlushableLog, timeoutMs: number = LOG_WRITTEN_TIMEOUT_MS): Promise<void> {
  return new Promise((resolve) => {
    /** The event waited for now, if any. */
    let waiting: 'drain' | 'ready' | undefined;
    const settle = (): void => {
      waiting = undefined;
      // Checked again after each event: a line logged meanwhile may have started another write.
      if (log._opening === true) waiting = 'ready';
      else if (log._writing === true) waiting = 'drain';
      if (waiting !== undefined) {
        log.once(waiting, settle);
        return;
      }
      clearTimeout(timer);
      try {
        log.flushSync();
      } catch {
        // Not open (a failed open), or closed meanwhile: nothing left to keep in order.
      }
      resolve();
    };
    const timer = setTimeout(() => {
      if (waiting !== undefined) log.removeListener(waiting, settle);
      resolve();
    }, timeoutMs);
    settle();
  });
}

/**
 * Writes `line` once every line `log` took is written (see {@link logWritten}), so that it stays
 * last.
 * @param write where the line goes @default stderr
 */
export async function writeAfterLog(
  log: FlushableLog,
  line: string,
  write: (text: string) => void = (text) => process.stderr.write(text),
): Promise<void> {
  await logWritten(log);
  write(line);
}
