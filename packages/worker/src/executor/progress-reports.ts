/**
 * How far a file has grown, told across the host channel: a followed download's progress from the
 * worker to its module host, a packed archive's growth from the host to the worker (which uploads
 * it as it grows). One report per {@link PROGRESS_STEP_BYTES} written (256 a GiB), and what was
 * written since at most {@link PROGRESS_DELAY_MS} later, so a slow or stalled file still shows
 * its first bytes.
 */

/** Bytes of growth per report at most. */
export const PROGRESS_STEP_BYTES = 4 * 1024 * 1024;
/** How long growth waits to be told at most, ms. */
export const PROGRESS_DELAY_MS = 20;

export interface ProgressReports {
  /** The file now holds `bytes` (a running total). */
  written(bytes: number): void;
  /** Tells what was written and not yet told, at once. */
  flush(): void;
  /** Drops a pending report (nothing more is told unless `written` is called again). */
  stop(): void;
}

/** Reports through `tell`, which gets the running total of bytes written. */
export function progressReports(tell: (written: number) => void): ProgressReports {
  let reported = 0;
  let latest = 0;
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (latest <= reported) return;
    reported = latest;
    tell(latest);
  };
  return {
    written(bytes) {
      latest = bytes;
      if (bytes - reported >= PROGRESS_STEP_BYTES) flush();
      else timer ??= setTimeout(flush, PROGRESS_DELAY_MS).unref();
    },
    flush,
    stop() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
