import type { ModuleLogger } from '@mpd/pipeline';
import { LOG_LINE_KEYS, maskDeep, type SecretMasker } from '@mpd/server-kit';
import type { Logger } from 'pino';
import type { OutputWriter } from './module-output.js';

/**
 * Where a module's fields named like one of its line's own keys go: `ctx.logger.info('started',
 * { pid: process.pid })` in a module host writes `"pid":<the worker's>, …, "moduleFields":{"pid":<the host's>}`.
 */
export const MODULE_FIELDS_KEY = 'moduleFields';

/** A `ctx.logger` level, as pino names it. */
type Level = 'debug' | 'info' | 'warn' | 'error';

/** pino's number for each level, to tell which of two lines is the more severe. */
const LEVEL_RANK: Readonly<Record<Level, number>> = { debug: 20, info: 30, warn: 40, error: 50 };

/** The more severe of two `ctx.logger` levels (`a` when they are equal). */
export const moreSevere = (a: Level, b: Level): Level => (LEVEL_RANK[b] > LEVEL_RANK[a] ? b : a);

/**
 * Why a `ctx.logger` line comes once its execution's output is closed (its answer given), in the
 * worker's log line's {@link LATE_KEY} field:
 * - `ended`: the module's code returned or threw; a timer or callback it left running logs;
 * - `cancelled`, `timed-out`: its answer was `Cancelled` or `TimedOut`, and its code still runs,
 *   ignoring `ctx.signal`: only with `--isolation none` (in a module host, `--isolation process`,
 *   the module's code is stopped before that answer, so its lines after it are always `ended`).
 */
export type LateLine = 'ended' | 'cancelled' | 'timed-out';

/** The worker's log line's field saying a module's line came after its output was closed, and why ({@link LateLine}). */
export const LATE_KEY = 'late';

/** What each {@link LateLine} says in the line's message, after `ctx.logger.<level>`. */
const LATE_WORDS: Readonly<Record<LateLine, string>> = {
  ended: 'after its module ended',
  cancelled: 'after its module was cancelled, from its code still running',
  'timed-out': 'after its module timed out, from its code still running',
};

/**
 * How many late lines of one execution the worker logs per {@link LATE_LINES_INTERVAL_MS}; those
 * past it are counted, and one line at the interval's end says how many were not logged. A
 * module's leftover `setInterval` that logs every few milliseconds wrote every line to the
 * worker's log, at `warn` (found in review, round H). Per execution, as journald limits each
 * service (`RateLimitBurst=` per `RateLimitIntervalSec=`, then "Suppressed N messages") and
 * rsyslog's imjournal emits its discard notice at the interval's end: two leftovers never take
 * each other's share. Ten a half minute: a module's cleanup callback that logs a few lines shows
 * them all; a leaking interval costs the worker's log 11 lines a half minute.
 */
export const LATE_LINES_BURST = 10;

/** The window of {@link LATE_LINES_BURST} (ms): journald's default `RateLimitIntervalSec=30s`. */
export const LATE_LINES_INTERVAL_MS = 30_000;

/**
 * Lets through at most `burst` lines per `intervalMs` (a window that starts at the first line
 * after the last one ended); the lines past it are counted, and `dropped` is told their count
 * and the most severe of their levels once the window ends (an unref'd timer: it keeps no
 * process alive). Time is `performance.now()` and `setTimeout`'s (fake timers in tests).
 */
export class LogRateLimit {
  private windowEnd = Number.NEGATIVE_INFINITY;
  private admitted = 0;
  private droppedLines = 0;
  private droppedLevel: Level = 'debug';
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dropped: (lines: number, level: Level) => void,
    private readonly burst = LATE_LINES_BURST,
    private readonly intervalMs = LATE_LINES_INTERVAL_MS,
  ) {}

  /** Whether a line (standing for `lines` lines) at `level` may be logged now; counted as dropped when not. */
  admit(level: Level, lines = 1): boolean {
    const now = performance.now();
    if (now >= this.windowEnd) {
      this.flush();
      this.windowEnd = now + this.intervalMs;
      this.admitted = 0;
    }
    if (this.admitted < this.burst) {
      this.admitted++;
      return true;
    }
    this.droppedLevel = this.droppedLines === 0 ? level : moreSevere(this.droppedLevel, level);
    this.droppedLines += lines;
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.windowEnd - now);
      this.timer.unref();
    }
    return false;
  }

  /**
   * Tells the lines dropped so far, if any: at the window's end, or sooner when the caller's next
   * lines are of another kind than those (the window and its count of admitted lines go on).
   */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.droppedLines === 0) return;
    const lines = this.droppedLines;
    this.droppedLines = 0;
    this.dropped(lines, this.droppedLevel);
  }
}

/**
 * The module's logger on the worker: every message and field passes through the secret masker.
 * Each line also goes to `output` (stream `log`, its level; fields as JSON after the message),
 * masked the same way (once, for both).
 * In-process modules log through it directly; a module host's log lines arrive over its host
 * channel (a pipe on fd 3, `HOST_CHANNEL_FD`) and are written through it (masking stays on the
 * worker's side either way).
 *
 * A field named like one of the line's own keys — those of every line (`LOG_LINE_KEYS`: level,
 * time, service, pid, hostname, msg), the bindings of `log` (workerId, module, executionId) and
 * {@link LATE_KEY} — is written under {@link MODULE_FIELDS_KEY} instead: pino writes a call's
 * fields beside the line's own whatever their names, and the line would hold the key twice (a
 * JSON parser keeps the last one, so the module's `pid` would pass for the worker's). The other
 * fields stay where the module put them.
 *
 * A line logged once `outputClosed()` says the execution's output is closed (a timer or callback
 * the module left running after it ended, or its code still running after a cancel or timeout
 * it ignores: `stillRunning()` says which) can be in no output any more, so no one watching the
 * run sees it: it goes to the worker's log alone, at its own level, with {@link LATE_KEY} saying
 * why ({@link LateLine}) and its message saying so (`ctx.logger.info after its module ended (not
 * in its output): …`), rather than nowhere (it was dropped silently with module hosts, a new
 * user found in round G). At most {@link LATE_LINES_BURST} such lines of the execution per
 * {@link LATE_LINES_INTERVAL_MS} are logged; then one line says how many were not (at the window's
 * end, or before a late line of another kind: each such line counts lines of one kind).
 * @param stillRunning why the module's code still runs after its answer (`cancelled`,
 *   `timed-out`), or undefined once it ended. @default always ended
 */
export function toModuleLogger(
  log: Logger,
  mask: SecretMasker,
  output?: OutputWriter,
  outputClosed?: () => boolean,
  stillRunning?: () => Exclude<LateLine, 'ended'> | undefined,
): ModuleLogger {
  /** The line's own keys, read at the first line with fields (most modules log none). */
  let taken: ReadonlySet<string> | undefined;
  /** The late lines' limit, made at the first late line (most executions have none). */
  let limit: LogRateLimit | undefined;
  /** Why the last late line came (the limit's line about dropped lines says it: they are all of that kind). */
  let lastLate: LateLine = 'ended';
  const write =
    (level: Level) =>
    (message: string, fields?: Record<string, unknown>): void => {
      if (outputClosed?.() === true) {
        // Nothing to do for a line the worker's log level leaves out: it is neither masked nor counted.
        if (!log.isLevelEnabled(level)) return;
        const late = stillRunning?.() ?? 'ended';
        // A line of another kind than the last (its code, still running after a cancel, ended
        // since): the lines not logged so far are told first, in their own words, so that the
        // line about them never says "after its module ended" of lines its code logged while
        // it still ran.
        if (late !== lastLate) limit?.flush();
        lastLate = late;
        limit ??= new LogRateLimit((lines, most) =>
          log[most](
            { [LATE_KEY]: lastLate, dropped: lines },
            `${lines} more ctx.logger line(s) ${LATE_WORDS[lastLate]} not logged: at most ${LATE_LINES_BURST} per ${LATE_LINES_INTERVAL_MS / 1000} s per execution`,
          ),
        );
        if (!limit.admit(level)) return;
        const text = `ctx.logger.${level} ${LATE_WORDS[late]} (not in its output): ${mask(message)}`;
        taken ??= lineKeys(log);
        log[level](
          fields === undefined ? { [LATE_KEY]: late } : { ...apart(maskDeep(fields, mask), taken), [LATE_KEY]: late },
          text,
        );
        return;
      }
      const masked = mask(message);
      if (fields === undefined) {
        log[level](masked);
        output?.write('log', masked, level);
        return;
      }
      taken ??= lineKeys(log);
      const maskedFields = maskDeep(fields, mask);
      log[level](apart(maskedFields, taken), masked);
      output?.write('log', `${masked} ${fieldsText(maskedFields)}`, level);
    };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

/** The keys of `log`'s lines that a module's fields must not take (see {@link toModuleLogger}). */
function lineKeys(log: Logger): ReadonlySet<string> {
  return new Set([...LOG_LINE_KEYS, ...Object.keys(log.bindings()), MODULE_FIELDS_KEY, LATE_KEY]);
}

/** A module's log fields as they follow its message in its output: JSON, or text when JSON cannot write them. */
function fieldsText(fields: unknown): string {
  try {
    return JSON.stringify(fields) ?? String(fields);
  } catch {
    return String(fields);
  }
}

/** `fields` with those named in `taken` moved under {@link MODULE_FIELDS_KEY}; `fields` itself when none is. */
function apart(fields: unknown, taken: ReadonlySet<string>): object {
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) return { [MODULE_FIELDS_KEY]: fields };
  const record = fields as Record<string, unknown>;
  if (!Object.keys(record).some((key) => taken.has(key))) return record;
  const kept: Record<string, unknown> = {};
  const moved: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) (taken.has(key) ? moved : kept)[key] = value;
  return { ...kept, [MODULE_FIELDS_KEY]: moved };
}
