import { type FileHandle, open } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';
import { isoTime, type OutputLine } from '@mpd/contract';
import { makeDirectory } from '@mpd/server-kit';

/** How many of an attempt's last lines {@link ExecutionLogs.tail} keeps (the summary repeats them for a failed module). */
export const TAIL_LINES = 20;

/** An attempt whose output the orchestrator takes: opened by the run when it dispatches it. */
export interface ExecutionLogEntry {
  executionId: string;
  /** The only worker that may write to it: the one the attempt was dispatched to. */
  workerId: string;
  module: string;
  /** The attempt's number (1-based). */
  attempt: number;
  /** Where its lines are appended (see {@link attemptLogFile}); none: they are only reported. */
  file?: string | undefined;
  /**
   * Called with each batch's new lines, once they are written; `closed` once, with the batch
   * that closes the log (`final`), whose lines may be none.
   */
  onLines?: ((lines: OutputLine[], closed: boolean) => void) | undefined;
  /** Called once `file` was made (at the attempt's first line): an attempt without output, or whose file cannot be made, has none. */
  onFile?: ((file: string) => void) | undefined;
}

/** What became of a batch (see {@link ExecutionLogs.append}). */
export type AppendOutcome =
  /** Its new lines are written; `acceptedThrough`: the next sequence number expected. */
  | { kind: 'accepted'; acceptedThrough: number }
  /** No such execution was dispatched to that worker (or it is no longer kept). */
  | { kind: 'not-found' }
  /** The batch starts past the next expected line: resend from `expectedSeq`. */
  | { kind: 'gap'; expectedSeq: number };

interface OpenLog {
  readonly entry: ExecutionLogEntry;
  /** The next sequence number expected. */
  next: number;
  /** A `final` batch came: no line is taken any more. */
  closed: boolean;
  /** The closing batch is written and reported. */
  complete: boolean;
  /** The last lines, at most {@link TAIL_LINES}. */
  readonly tail: OutputLine[];
  /** The file's writes, one after the other (a batch's answer waits for its own). */
  writes: Promise<void>;
  /**
   * The file, open from its first batch until the log closes or is forgotten: one write per
   * batch, where opening and closing it for each batch cost as much as the writes (`pnpm bench`,
   * benchmark 5). Undefined before the first batch, or once it could not be opened.
   */
  handle: Promise<FileHandle | undefined> | undefined;
}

/**
 * The orchestrator's side of module output: the attempts its runs dispatched (by executionId,
 * with the worker each went to), the next line each expects, and its log file. Shared by the
 * HTTP route (`POST /api/executions/{executionId}/output`) and the runner (`runPipeline`'s
 * `executionLogs`), as the endpoint policy is. Idempotent by sequence number: a line already
 * accepted is skipped, so a batch sent again (its answer lost) never writes a line twice.
 */
export class ExecutionLogs {
  readonly #logs = new Map<string, OpenLog>();

  /** Takes output for `entry.executionId` from `entry.workerId` from now on. */
  open(entry: ExecutionLogEntry): void {
    if (this.#logs.has(entry.executionId)) return;
    this.#logs.set(entry.executionId, {
      entry,
      next: 0,
      closed: false,
      complete: false,
      tail: [],
      writes: Promise.resolve(),
      handle: undefined,
    });
  }

  /**
   * Appends a batch from `workerId` whose first line has sequence number `fromSeq`: the lines
   * already accepted are skipped, the rest written to the attempt's file and passed to its
   * `onLines`; `final` closes the log (later batches answer as accepted, with nothing new).
   * A file that cannot be written loses nothing else: the lines are still reported, the failure
   * goes to `onWriteError`.
   */
  async append(
    executionId: string,
    workerId: string,
    batch: { fromSeq: number; lines: readonly OutputLine[]; final?: boolean | undefined },
    onWriteError?: (error: unknown, file: string) => void,
  ): Promise<AppendOutcome> {
    const log = this.#logs.get(executionId);
    if (!log || log.entry.workerId !== workerId) return { kind: 'not-found' };
    if (batch.fromSeq > log.next) return { kind: 'gap', expectedSeq: log.next };
    const fresh = log.closed ? [] : batch.lines.slice(log.next - batch.fromSeq);
    // Taken at once (before any write): a retry arriving meanwhile skips these lines.
    log.next += fresh.length;
    const closing = batch.final === true && !log.closed;
    if (closing) log.closed = true;
    if (fresh.length > 0) {
      log.tail.push(...fresh.slice(-TAIL_LINES));
      if (log.tail.length > TAIL_LINES) log.tail.splice(0, log.tail.length - TAIL_LINES);
      const { file } = log.entry;
      if (file !== undefined) {
        // A file left by an earlier run with the same --logs-dir is replaced, not appended to.
        log.handle ??= makeDirectory(dirname(file))
          .then(() => open(file, 'w'))
          .then((handle) => {
            log.entry.onFile?.(file);
            return handle;
          })
          .catch((error: unknown) => {
            onWriteError?.(error, file);
            return undefined;
          });
        const opened = log.handle;
        const text = formatLogLines(fresh);
        log.writes = log.writes.then(async () => {
          try {
            const handle = await opened;
            if (handle) await handle.appendFile(text);
          } catch (error) {
            onWriteError?.(error, file);
          }
        });
        await log.writes;
      }
    }
    if (closing) this.#closeFile(log);
    if (fresh.length > 0 || closing) log.entry.onLines?.(fresh, closing);
    if (closing) log.complete = true;
    return { kind: 'accepted', acceptedThrough: log.next };
  }

  /**
   * Closes `executionId`'s log as an empty `final` batch from `workerId` does: its worker said in
   * its execute answer that the output is complete and empty (`Mpd-Output: none`), so no batch
   * comes. Nothing for an unknown execution or another worker's.
   */
  endEmpty(executionId: string, workerId: string): void {
    void this.append(executionId, workerId, { fromSeq: 0, lines: [], final: true });
  }

  /** The last lines (at most {@link TAIL_LINES}) of `executionId`'s log. */
  tail(executionId: string): readonly OutputLine[] {
    return this.#logs.get(executionId)?.tail ?? [];
  }

  /**
   * How many lines of `executionId`'s log were accepted so far (the next sequence number
   * expected; 0 when it is not kept): the run's wait at its end watches it move.
   */
  received(executionId: string): number {
    return this.#logs.get(executionId)?.next ?? 0;
  }

  /** Whether `executionId`'s log was closed by a `final` batch, written and reported (or is not kept). */
  closed(executionId: string): boolean {
    return this.#logs.get(executionId)?.complete ?? true;
  }

  /** Forgets the logs of `executionIds` (a run that ended): their output is no longer taken (404). */
  forget(executionIds: Iterable<string>): void {
    for (const executionId of executionIds) {
      const log = this.#logs.get(executionId);
      if (log) this.#closeFile(log);
      this.#logs.delete(executionId);
    }
  }

  /** Closes `log`'s file once its writes are done (a later batch of a closed log writes nothing). */
  #closeFile(log: OpenLog): void {
    const { handle } = log;
    if (!handle) return;
    log.handle = Promise.resolve(undefined);
    log.writes = log.writes.then(async () => {
      await (await handle)?.close().catch(() => undefined);
    });
  }
}

/**
 * Where an attempt's log is kept: `<logsDir>/<module>/<attempt>.log`, the module's name
 * percent-encoded as one path segment (a name may hold `/` and `..`: `a/../../x` must not climb).
 */
export function attemptLogFile(logsDir: string, module: string, attempt: number): string {
  const segment = encodeURIComponent(module);
  const dir = normalizedLogsDir(logsDir);
  // What `join` gives, without normalising the whole path again at every dispatch (0.5–0.7 µs of
  // the orchestrator's CPU per module: issue 14, round P): `dir` is normalised and ends with no
  // separator, and the segment holds none (encoded) and is no `.` or `..` (module names start with
  // a letter or a digit; checked all the same). Any other case goes through `join`.
  if (dir !== undefined && segment !== '' && segment !== '.' && segment !== '..') {
    return `${dir}${sep}${segment}${sep}${attempt}.log`;
  }
  return join(logsDir, segment, `${attempt}.log`);
}

/** The last `logsDir` {@link normalizedLogsDir} was asked for (one per orchestrator) and its answer. */
let lastLogsDir: string | undefined;
let lastNormalized: string | undefined;

/**
 * `logsDir` normalised (`path.normalize`), without a trailing separator; undefined where a path
 * joined to it would not simply follow it (`.`, the root): `attemptLogFile` joins those in full.
 */
function normalizedLogsDir(logsDir: string): string | undefined {
  if (logsDir !== lastLogsDir) {
    let normalized: string | undefined = normalize(logsDir);
    if (normalized.length > 1 && normalized.endsWith(sep)) normalized = normalized.slice(0, -1);
    if (normalized === '.' || normalized.endsWith(sep)) normalized = undefined;
    lastLogsDir = logsDir;
    lastNormalized = normalized;
  }
  return lastNormalized;
}

/**
 * One line of an attempt's log file: `<ISO time> <stream> <level or -> <text>`, a line break in
 * the text written as `\n` so that one output line stays one line of the file.
 */
export function formatLogLine(line: OutputLine): string {
  return formatLogLines([line]);
}

/**
 * The lines of a batch as {@link formatLogLine} writes each: the time written once for the lines
 * of one millisecond (a batch's lines mostly share theirs), and a text searched for line breaks
 * before it is rewritten: per line, `toISOString` and the `replace` cost more than the write
 * (`pnpm bench`, benchmark 5).
 */
export function formatLogLines(lines: readonly OutputLine[]): string {
  let text = '';
  let time = NaN;
  let iso = '';
  for (const line of lines) {
    if (line.time !== time) {
      time = line.time;
      iso = isoTime(time);
    }
    const body = line.text.includes('\n') ? line.text.replace(/\r?\n/g, '\\n') : line.text;
    text += `${iso} ${line.stream} ${line.level ?? '-'} ${body}\n`;
  }
  return text;
}
