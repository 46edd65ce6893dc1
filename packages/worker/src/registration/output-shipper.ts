import { closeSync, mkdirSync, openSync, readSync, unlinkSync, writeSync, writevSync } from 'node:fs';
import { join } from 'node:path';
import { bearerHeader, JsonText, type OrchestratorClient } from '@mpd/client';
import type { OutputBatch, OutputLevel, OutputStream } from '@mpd/contract';
import { LIMITS } from '@mpd/contract/limits';
import { backoffDelay } from '@mpd/server-kit';
import type { Logger } from 'pino';
import { type ModuleOutput, type OutputWriter, splitLines } from '../executor/module-output.js';
import { DEFAULT_OUTPUT_BUFFER_BYTES, DEFAULT_OUTPUT_SPILL_BYTES } from '../worker-defaults.js';

// The worker's default `--output-buffer-size` and `--output-spill-size`: worker-defaults.ts.
export { DEFAULT_OUTPUT_BUFFER_BYTES, DEFAULT_OUTPUT_SPILL_BYTES };

/** The shipper's defaults (see {@link OutputShipperOptions}). */
export const DEFAULT_OUTPUT_SHIPPER_OPTIONS = {
  flushIntervalMs: 200,
  maxBatchLines: LIMITS.output.maxLinesPerBatch,
  bufferBytesPerExecution: DEFAULT_OUTPUT_BUFFER_BYTES,
  spillBytesPerExecution: DEFAULT_OUTPUT_SPILL_BYTES,
  callDeadlineMs: 10_000,
  closeWaitMs: 2_000,
} as const;

/** Options of {@link OutputShipper}. */
export interface OutputShipperOptions {
  client: OrchestratorClient;
  workerId: string;
  /** The worker's credential now (it changes at each registration); read at every call. */
  credential: () => string | undefined;
  logger: Logger;
  /** Where an execution's lines spill once its memory buffer is full: a file per execution under it. */
  spillDir: string;
  /**
   * How often pending lines are sent while their module runs (ms): one batch each time, the rest
   * waits (see {@link OutputShipper.pending}). @default 200
   */
  flushIntervalMs?: number;
  /** Lines per batch (at most the contract's `LIMITS.output.maxLinesPerBatch`). @default 1,000 (the contract's most) */
  maxBatchLines?: number;
  /**
   * Output kept in memory per execution, as it was written (a block of a command's lines counted
   * as its bytes, a `ctx.logger` line as its text; each and 50 bytes more), before it spills to
   * disk. @default 1 MiB ({@link DEFAULT_OUTPUT_BUFFER_BYTES})
   */
  bufferBytesPerExecution?: number;
  /**
   * Output kept in the spill file per execution, counted as in memory: past it lines are dropped, and one line saying how many
   * takes their place once there is room again (or at the end). @default 64 MiB ({@link DEFAULT_OUTPUT_SPILL_BYTES})
   */
  spillBytesPerExecution?: number;
  /** The first retry delay after a failed call (ms); doubles up to `maxBackoffMs` (the registration's). */
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** One call's deadline (ms). @default 10_000 */
  callDeadlineMs?: number;
  /** How long {@link OutputShipper.close} waits for what is pending (ms). @default 2_000 */
  closeWaitMs?: number;
}

/** Bytes of spilled chunks kept pending before they are written without waiting for the tick's end (bounds memory in a burst). */
const SPILL_FLUSH_BYTES = 256 * 1024;

/**
 * How much of a spill file one read takes back (bytes): the chunks in it are read back from it
 * without a read each (a chunk larger than this is read alone). A read per header and one per
 * chunk were two system calls and two allocations for each block of a command's lines (`pnpm
 * bench`, benchmark 5, 19 of its 20 MB spilled), and for each `ctx.logger` line.
 */
const SPILL_READ_BYTES = 256 * 1024;

/**
 * What a line costs in the buffers besides its text: about its JSON's envelope in a batch
 * (`{"time":…,"stream":"stdout","text":""}`, 50 bytes), so that `--output-buffer-size` and
 * `--output-spill-size` bound many short lines (`ctx.logger`) as they did when lines were kept as
 * their JSON; a block of a command's lines is counted as its bytes and this once.
 */
const CHUNK_OVERHEAD_BYTES = 50;

/**
 * Spill files kept for the next executions once their own execution's output is shipped, at most
 * (each zeroed, at the size its last execution made it: see {@link SpillFile}). Two: an execution
 * that spills is one whose module writes faster than the pacing ships, and a worker seldom runs
 * more than two of those at once; past it, a file is closed (its pages freed) as it was before.
 */
const MAX_FREE_SPILL_FILES = 2;

/** What {@link zeroSpillFile} writes from: one `writev` of up to 1,024 of these (256 MiB). */
const ZEROS = Buffer.alloc(256 * 1024);

/** A spilled chunk's header: kind (0 text, 1 bytes to mask), stream, level, 5 spare bytes, time (float64), length (uint32). */
const SPILL_HEADER_BYTES = 20;

/** Any character but printable ASCII other than `"` and `\`: JSON escapes it, or UTF-8 takes more than a byte for it. */
const NOT_PLAIN = /[^\x20\x21\x23-\x5b\x5d-\x7e]/;

/** {@link NOT_PLAIN} in a block of lines: its line breaks (`\n`) are not in the way. */
const NOT_PLAIN_LINES = /[^\x20\x21\x23-\x5b\x5d-\x7e\n]/;

/**
 * Between two lines' JSON in a {@link Pending} of plain lines: nowhere else there (plain text has
 * no `"`), so it is where such a run of lines is cut.
 */
const BETWEEN_LINES = '"},{"';

const STREAMS: readonly OutputStream[] = ['stdout', 'stderr', 'log'];
const LEVELS: readonly (OutputLevel | undefined)[] = [undefined, 'debug', 'info', 'warn', 'error'];

/**
 * Lines as they wait to be sent: their JSON (`count` elements of a batch's `lines`, joined by
 * commas), and that JSON's size in UTF-8 bytes. A batch's body is joined from them
 * ({@link JsonText}): serialising line objects per batch cost more than everything else the
 * shipper did per line (`pnpm bench`, benchmark 5). A block of plain ASCII lines from a command
 * is one of these, made with one `replaceAll` (its lines are cut apart only where a batch or an
 * acceptance ends inside it: see {@link splitPending}); any other line is one of its own. A string
 * and an object per line cost the shipper about 11 of its 95 ms of CPU per 200,000 lines of 100
 * characters from a command (the shipper alone, its HTTP calls stubbed).
 */
interface Pending {
  json: string;
  bytes: number;
  count: number;
}

/**
 * What an execution wrote, as it came, not yet made into lines: the text of a `write` (masked by
 * its writer), or the bytes of a block of a command's whole lines (`writeBytes`), masked when it
 * is made into lines. Kept so, and spilled so, the writer pays for a copy at most: splitting,
 * masking and making each line's JSON happen when a batch is made (`pnpm bench`, benchmark 5:
 * done as the lines came, that work competed with the command for the CPU).
 */
interface Chunk {
  time: number;
  stream: OutputStream;
  level: OutputLevel | undefined;
  /** A `write`'s text (masked), or a block of lines as bytes, each ending with `\n` (not masked yet). */
  data: string | Buffer;
}

/**
 * `line` as JSON (the contract's `outputLineSchema`), made by hand for plain ASCII text, which
 * most output is (nothing to escape: its size is its length); by `JSON.stringify` otherwise.
 */
function pendingLine(time: number, stream: OutputStream, level: OutputLevel | undefined, text: string): Pending {
  const plain = !NOT_PLAIN.test(text);
  const json = `${lineStart(time, stream, level)}${plain ? `"${text}"` : JSON.stringify(text)}}`;
  return { json, bytes: plain ? json.length : Buffer.byteLength(json), count: 1 };
}

/** A line's JSON up to its text: `{"time":…,"stream":…,"text":`. */
const lineStart = (time: number, stream: OutputStream, level: OutputLevel | undefined): string =>
  `{"time":${time},"stream":"${stream}"${level === undefined ? '' : `,"level":"${level}"`},"text":`;

/**
 * Gives `text`'s lines (split at `\n`) to `push` as runs of lines, each one {@link Pending}, when
 * they are plain ASCII (see {@link NOT_PLAIN}), none ends with `\r` and none is longer than
 * `maxLength`; returns false, giving nothing, otherwise (each is then made a line of its own, as
 * {@link splitLines} splits them). The first run holds at most `room` lines, each other at most
 * `maxLines`: the caller's runs end where its batches end, so a batch takes whole runs and a run
 * is seldom cut ({@link splitPending} walks its lines).
 */
function pushPlainLines(
  chunk: Chunk,
  text: string,
  maxLength: number,
  room: number,
  maxLines: number,
  push: (pending: Pending) => void,
): boolean {
  if (NOT_PLAIN_LINES.test(text)) return false;
  // Where each run ends in `text` (its last line's end), and its line count.
  const ends: number[] = [];
  const counts: number[] = [];
  let count = 0;
  let limit = room;
  for (let at = 0, next = text.indexOf('\n'); ; next = text.indexOf('\n', (at = next + 1))) {
    const end = next < 0 ? text.length : next;
    if (end - at > maxLength) return false;
    count++;
    if (count === limit || next < 0) {
      ends.push(end);
      counts.push(count);
      count = 0;
      limit = maxLines;
    }
    if (next < 0) break;
  }
  const start = lineStart(chunk.time, chunk.stream, chunk.level);
  const between = `"},${start}"`;
  for (let index = 0, from = 0; index < ends.length; from = ends[index++]! + 1) {
    const lines = ends.length === 1 ? text : text.slice(from, ends[index]);
    const json = `${start}"${counts[index] === 1 ? lines : lines.replaceAll('\n', between)}"}`;
    push({ json, bytes: json.length, count: counts[index]! });
  }
  return true;
}

/**
 * Cuts `pending` (plain lines, more than one: see {@link pushPlainLines}) after its first `count`
 * lines, after fewer if those take more than `maxBytes`, and before its last line at the latest:
 * the first lines (at least one) and the rest (at least one).
 */
function splitPending(pending: Pending, count: number, maxBytes = Infinity): [Pending, Pending] {
  let end = -1;
  let taken = 0;
  for (
    let at = pending.json.indexOf(BETWEEN_LINES);
    taken < count && at >= 0;
    at = pending.json.indexOf(BETWEEN_LINES, at + 1)
  ) {
    // Up to and with the line's closing `"}` (plain: its size is its length).
    if (taken > 0 && at + 2 > maxBytes) break;
    end = at + 2;
    taken++;
  }
  const head = pending.json.slice(0, end);
  const tail = pending.json.slice(end + 1);
  return [
    { json: head, bytes: head.length, count: taken },
    { json: tail, bytes: tail.length, count: pending.count - taken },
  ];
}

/** What a chunk counts against the buffers (see {@link CHUNK_OVERHEAD_BYTES}). */
const chunkCost = (chunk: Chunk): number => chunk.data.length + CHUNK_OVERHEAD_BYTES;

/** How many lines a chunk holds (for the count of dropped lines). */
function linesOf(data: string | Buffer): number {
  let count = typeof data === 'string' ? 1 : 0;
  for (let at = data.indexOf('\n'); at >= 0; at = data.indexOf('\n', at + 1)) count++;
  return count;
}

/**
 * A spill file: `fd` open for reading and writing, its path unlinked once it was opened (see
 * {@link OutputShipper.takeSpillFile}); `extent`: how far from its start
 * it was ever written (its size), all of it zeros while no execution holds it. Files are kept
 * for the next execution once one's output is shipped (see {@link OutputShipper.releaseSpillFile}):
 * writing into a new file cost the kernel its page-cache pages and its delayed blocks per byte
 * (`ext4_da_write_begin`, half of the worker's main thread while a command wrote, `pnpm bench`
 * benchmark 5), overwriting a file's pages costs it a copy (20 MB: 4.0 ms of system CPU into a
 * new file, 1.7 ms into an old one, measured here).
 */
interface SpillFile {
  fd: number;
  extent: number;
}

/**
 * An execution's spill file: `size` counts the bytes in the file, `read` those read back, `used`
 * what its chunks count against `spillBytesPerExecution`; the chunks spilled since the last write
 * wait in `pending` for one write per tick; `block` holds the bytes of the file's last read from
 * `blockAt` (see {@link SPILL_READ_BYTES}).
 */
interface Spill {
  file: SpillFile;
  used: number;
  size: number;
  read: number;
  pending: Buffer[];
  pendingBytes: number;
  block: Buffer | undefined;
  blockAt: number;
}

/** One execution's output on its way. */
class ExecutionOutput implements OutputWriter {
  /** The sequence number of `lines[0]` (every line before it was accepted). */
  firstSeq = 0;
  /** Lines made from the chunks and not yet accepted, in order (about a batch: made as batches are). */
  readonly lines: Pending[] = [];
  /** How many lines {@link ExecutionOutput.lines} holds. */
  lineCount = 0;
  /** Chunks not made into lines yet, in order (those of the spill file come after them). */
  private readonly chunks: Chunk[] = [];
  private chunksBytes = 0;
  /** Masks a chunk of bytes (the execution's secrets), given with the first. */
  private mask: ((text: string) => string) | undefined;
  /**
   * The spill file (chunks, each a {@link SPILL_HEADER_BYTES} header and its bytes), from the
   * first chunk spilled to the execution's end: once every chunk in it is read back it is written
   * again from its start. See {@link Spill}.
   */
  private spill: Spill | undefined;
  /** A flush of the spill's pending chunks is scheduled (setImmediate). */
  private flushScheduled = false;
  /** Lines dropped since the last marker, past the spill bound. */
  dropped = 0;
  ended = false;
  /** The final batch was accepted (or the orchestrator no longer knows the execution). */
  done = false;
  sending = false;
  /** A batch was sent (or is on its way) for this execution. */
  sent = false;
  /** A send is scheduled for the next turn (see {@link OutputShipper.pending}). */
  soon = false;
  failures = 0;
  retryAt = 0;

  constructor(
    readonly executionId: string,
    private readonly shipper: OutputShipper,
  ) {}

  write(stream: OutputStream, text: string, level?: OutputLevel): void {
    // Done: the orchestrator no longer takes this execution's output (nothing is kept for it).
    if (this.ended || this.done) return;
    this.add({ time: Date.now(), stream, level, data: text });
  }

  writeBytes(stream: 'stdout' | 'stderr', lines: Buffer, mask: (text: string) => string): void {
    if (this.ended || this.done || lines.length === 0) return;
    this.mask ??= mask;
    this.add({ time: Date.now(), stream, level: undefined, data: lines });
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.shipper.pending(this);
  }

  private add(chunk: Chunk): void {
    const { bufferBytesPerExecution, spillBytesPerExecution } = this.shipper.bounds;
    const cost = chunkCost(chunk);
    if (!this.spilled && this.dropped === 0 && this.chunksBytes + cost <= bufferBytesPerExecution) {
      this.chunks.push(chunk);
      this.chunksBytes += cost;
    } else if (
      this.dropped > 0 ||
      (this.spill?.used ?? 0) + cost > spillBytesPerExecution ||
      !this.spillChunk(chunk, cost)
    ) {
      this.dropped += linesOf(chunk.data);
    }
    this.shipper.pending(this);
  }

  /** What waits to be made into lines, counted as the bounds count it (memory and spill file). */
  get queuedBytes(): number {
    return this.chunksBytes + (this.spill?.used ?? 0);
  }

  /**
   * Appends a chunk to the spill file (made at the first; false when it cannot be): kept pending
   * and written with the others of this tick, at once past {@link SPILL_FLUSH_BYTES}.
   */
  private spillChunk(chunk: Chunk, cost: number): boolean {
    try {
      if (!this.spill) {
        this.spill = {
          file: this.shipper.takeSpillFile(),
          used: 0,
          size: 0,
          read: 0,
          pending: [],
          pendingBytes: 0,
          block: undefined,
          blockAt: 0,
        };
      }
    } catch (error) {
      this.shipper.logger.warn({ err: error, executionId: this.executionId }, 'could not spill module output to disk');
      return false;
    }
    const data = typeof chunk.data === 'string' ? Buffer.from(chunk.data) : chunk.data;
    const header = Buffer.allocUnsafe(SPILL_HEADER_BYTES);
    header.fill(0, 0, 8);
    header[0] = typeof chunk.data === 'string' ? 0 : 1;
    header[1] = STREAMS.indexOf(chunk.stream);
    header[2] = LEVELS.indexOf(chunk.level);
    header.writeDoubleLE(chunk.time, 8);
    header.writeUInt32LE(data.length, 16);
    this.spill.pending.push(header, data);
    this.spill.pendingBytes += SPILL_HEADER_BYTES + data.length;
    this.spill.used += cost;
    if (this.spill.pendingBytes >= SPILL_FLUSH_BYTES) this.flushSpill();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flushSpill();
      });
    }
    return true;
  }

  /**
   * Writes the spill's pending chunks in one write. When it fails their lines count as dropped (as
   * a line whose write failed always did), and so does every line after them until the spill is
   * read back.
   */
  private flushSpill(): void {
    const spill = this.spill;
    if (!spill || spill.pending.length === 0) return;
    const buffers = spill.pending;
    const bytes = spill.pendingBytes;
    spill.pending = [];
    spill.pendingBytes = 0;
    // Before the write: what it may have written is zeroed at the end, whatever it returns.
    spill.file.extent = Math.max(spill.file.extent, spill.size + bytes);
    try {
      const { fd } = spill.file;
      const done = writevSync(fd, buffers, spill.size);
      if (done < bytes) {
        const rest = Buffer.concat(buffers).subarray(done);
        for (let at = 0; at < rest.length;) at += writeSync(fd, rest, at, rest.length - at, spill.size + done + at);
      }
      spill.size += bytes;
    } catch (error) {
      this.shipper.logger.warn({ err: error, executionId: this.executionId }, 'could not spill module output to disk');
      for (let index = 1; index < buffers.length; index += 2) this.dropped += linesOf(buffers[index]!);
    }
  }

  /** The next chunk read back from the spill file, or undefined when none is left. */
  private readSpilled(): Chunk | undefined {
    const spill = this.spill;
    if (!spill) return undefined;
    this.flushSpill();
    if (spill.read >= spill.size) return undefined;
    const header = spillBytes(spill, spill.read, SPILL_HEADER_BYTES);
    const length = header.readUInt32LE(16);
    const data = spillBytes(spill, spill.read + SPILL_HEADER_BYTES, length);
    spill.read += SPILL_HEADER_BYTES + length;
    const chunk: Chunk = {
      time: header.readDoubleLE(8),
      stream: STREAMS[header[1]!]!,
      level: LEVELS[header[2]!],
      data: header[0] === 0 ? data.toString('utf8') : data,
    };
    spill.used -= chunkCost(chunk);
    if (spill.read >= spill.size) {
      // Every chunk in it was read back: written again from its start.
      spill.read = 0;
      spill.size = 0;
      spill.used = 0;
      spill.block = undefined;
    }
    return chunk;
  }

  /**
   * Makes chunks into lines until a batch's worth waits (or none is left): split at line breaks
   * and into pieces of the contract's longest line, a block of bytes masked first (whole lines:
   * a secret is never cut in two). Then, once every chunk before them was made into lines, one
   * line saying how many were dropped.
   */
  refill(maxLines: number): void {
    while (this.lineCount < maxLines) {
      let chunk = this.chunks.shift();
      if (chunk) this.chunksBytes -= chunkCost(chunk);
      else chunk = this.readSpilled();
      if (!chunk) break;
      let text: string;
      if (typeof chunk.data === 'string') text = chunk.data;
      else {
        const data = chunk.data;
        // Without its last line's \n (and the \r of a \r\n).
        const end = data.length > 1 && data[data.length - 2] === 0x0d ? data.length - 2 : data.length - 1;
        text = data.toString('utf8', 0, end);
        if (this.mask) text = this.mask(text);
      }
      const room = maxLines - this.lineCount;
      if (!pushPlainLines(chunk, text, LIMITS.output.maxLineLength, room, maxLines, this.pushPending))
        for (const piece of splitLines(text)) this.push(pendingLine(chunk.time, chunk.stream, chunk.level, piece));
    }
    if (!this.spilled && this.chunks.length === 0 && this.dropped > 0) {
      const text = `[mpd] ${this.dropped} line(s) of output dropped: the worker could not ship them to the orchestrator in time and its buffer for this execution was full`;
      this.push(pendingLine(Date.now(), 'stderr', undefined, text));
      this.dropped = 0;
    }
  }

  /** Forgets what the spill file held (it could not be read back), counted as one dropped line at least. */
  loseSpill(): void {
    if (!this.spill) return;
    this.dropped += Math.max(1, Math.round(this.spill.used / 100));
    this.spill.pending = [];
    this.spill.pendingBytes = 0;
    this.spill.read = this.spill.size = this.spill.used = 0;
    this.spill.block = undefined;
  }

  /** Whether chunks wait in the spill file (they come after those in memory). */
  get spilled(): boolean {
    return this.spill !== undefined && (this.spill.size > this.spill.read || this.spill.pending.length > 0);
  }

  /** Whether every line written was made into lines (nothing waits in memory or in the spill file). */
  get drained(): boolean {
    return this.chunks.length === 0 && !this.spilled && this.dropped === 0;
  }

  /**
   * Gives the spill file back (the execution's output is done, or the shipper closes): zeroed, so
   * that none of this execution's lines stays in it (see {@link OutputShipper.releaseSpillFile}).
   */
  closeSpill(): void {
    if (!this.spill) return;
    this.shipper.releaseSpillFile(this.spill.file);
    this.spill = undefined;
  }

  private push(pending: Pending): void {
    this.lines.push(pending);
    this.lineCount += pending.count;
  }

  private readonly pushPending = (pending: Pending): void => this.push(pending);

  /** Forgets the lines before `seq` (accepted). */
  acceptedThrough(seq: number): void {
    let count = Math.min(seq - this.firstSeq, this.lineCount);
    if (count <= 0) return;
    this.firstSeq += count;
    this.lineCount -= count;
    let whole = 0;
    while (whole < this.lines.length && this.lines[whole]!.count <= count) count -= this.lines[whole++]!.count;
    this.lines.splice(0, whole);
    if (count > 0) this.lines[0] = splitPending(this.lines[0]!, count)[1];
  }
}

/**
 * `length` bytes of the spill file from `position` (all written): from its last block read when
 * they are in it, else from a new block of {@link SPILL_READ_BYTES} (or `length`) read from
 * `position`, up to what the file holds. Part of that block, not a copy: a block is never read
 * into again (the next read makes a new one), and `refill` decodes a chunk's bytes as soon as it
 * takes them, so no chunk keeps a block alive.
 */
function spillBytes(spill: Spill, position: number, length: number): Buffer {
  let offset = position - spill.blockAt;
  if (!spill.block || offset < 0 || offset + length > spill.block.length) {
    spill.block = Buffer.allocUnsafe(Math.max(length, Math.min(SPILL_READ_BYTES, spill.size - position)));
    spill.blockAt = position;
    readFully(spill.file.fd, spill.block, position);
    offset = 0;
  }
  return spill.block.subarray(offset, offset + length);
}

/** Overwrites `file` with zeros from its start to its extent (in `writev`s of up to 1,024 {@link ZEROS}). */
function zeroSpillFile(file: SpillFile): void {
  for (let at = 0; at < file.extent;) {
    const zeros: Buffer[] = [];
    for (let left = file.extent - at; left > 0 && zeros.length < 1024; left -= ZEROS.length)
      zeros.push(left >= ZEROS.length ? ZEROS : ZEROS.subarray(0, left));
    at += writevSync(file.fd, zeros, at);
  }
}

/** Closes a spill file: its pages go with its last descriptor (its path is gone since it was opened). */
function removeSpillFile(file: SpillFile): void {
  try {
    closeSync(file.fd);
  } catch {
    // Closed already: nothing to keep.
  }
}

/** Reads `buffer.length` bytes of `fd` from `position`. */
function readFully(fd: number, buffer: Buffer, position: number): void {
  for (let at = 0; at < buffer.length;) {
    const got = readSync(fd, buffer, at, buffer.length - at, position + at);
    if (got === 0) throw new Error('the output spill file ended early');
    at += got;
  }
}

/**
 * Ships the worker's module output to the orchestrator (`POST /api/executions/{executionId}/output`),
 * one execution at a time per call, in batches every `flushIntervalMs` (or at once when
 * `maxBatchLines` wait) with sequence numbers, so that a batch sent again after a lost answer
 * is not duplicated. A failed call is retried with the registration's backoff; lines wait in
 * memory meanwhile (`bufferBytesPerExecution`), then in a spill file under `spillDir`
 * (`spillBytesPerExecution`), then are dropped, counted, and replaced by one line saying how
 * many. An execution's last batch is `final`. Output of an execution the orchestrator no longer
 * knows (404: its run ended, or it restarted) is dropped.
 */
export class OutputShipper implements ModuleOutput {
  readonly #executions = new Map<string, ExecutionOutput>();
  readonly bounds: { bufferBytesPerExecution: number; spillBytesPerExecution: number };
  readonly spillDir: string;
  readonly logger: Logger;
  readonly #maxBatchLines: number;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #closing = false;
  readonly #inFlight = new Set<Promise<void>>();
  /** Spill files no execution holds, zeroed, for the next ones (see {@link SpillFile}). */
  readonly #freeSpillFiles: SpillFile[] = [];
  /**
   * The number in the next spill file's name (`<pid>-<n>.spill`, for the moment between its open
   * and its unlink: the process id too, as a replaced worker and its replacement, with the same
   * id, share the directory).
   */
  #spillFileNames = 0;

  constructor(private readonly options: OutputShipperOptions) {
    this.bounds = {
      bufferBytesPerExecution:
        options.bufferBytesPerExecution ?? DEFAULT_OUTPUT_SHIPPER_OPTIONS.bufferBytesPerExecution,
      spillBytesPerExecution: options.spillBytesPerExecution ?? DEFAULT_OUTPUT_SHIPPER_OPTIONS.spillBytesPerExecution,
    };
    this.spillDir = options.spillDir;
    this.logger = options.logger;
    this.#maxBatchLines = Math.min(
      options.maxBatchLines ?? DEFAULT_OUTPUT_SHIPPER_OPTIONS.maxBatchLines,
      LIMITS.output.maxLinesPerBatch,
    );
  }

  open(executionId: string): OutputWriter {
    let output = this.#executions.get(executionId);
    if (!output) this.#executions.set(executionId, (output = new ExecutionOutput(executionId, this)));
    return output;
  }

  endEmpty(executionId: string): boolean {
    const output = this.#executions.get(executionId);
    if (!output || !output.ended || output.sent || output.done || output.firstSeq > 0 || output.lineCount > 0)
      return false;
    if (!output.drained) return false;
    output.done = true;
    output.closeSpill();
    this.#executions.delete(executionId);
    return true;
  }

  /**
   * An execution has lines (or its end) to send. While its module runs, one batch per
   * `flushIntervalMs` (up to `maxBatchLines` lines: 5,000 lines/s by default, more than anyone
   * reads live), the rest waiting in memory and the spill file: shipping as fast as a module
   * writes took the CPU the module's own commands needed on a small machine (`pnpm bench`,
   * benchmark 5: 2x the module's time). Batch after batch, one at a time, once the module ended
   * (after its answer), while the shipper closes, or while more than half of the spill bound waits
   * (lines are not dropped for the sake of pacing).
   */
  pending(output: ExecutionOutput): void {
    if (this.#closed || output.done) return;
    const urgent = output.ended || this.#closing || output.queuedBytes > this.bounds.spillBytesPerExecution / 2;
    if (urgent && output.retryAt <= Date.now()) {
      // On the next turn: the execution's answer, made in this one, leaves first.
      if (!output.soon) {
        output.soon = true;
        setImmediate(() => {
          output.soon = false;
          this.send(output);
        });
      }
      return;
    }
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.flush();
    }, this.options.flushIntervalMs ?? DEFAULT_OUTPUT_SHIPPER_OPTIONS.flushIntervalMs);
    this.#timer.unref();
  }

  /** Sends what every execution has pending (those waiting for a retry once their delay passed). */
  flush(): void {
    const now = Date.now();
    for (const output of this.#executions.values()) {
      if (output.retryAt <= now) this.send(output);
      else if (!output.done) this.pending(output);
    }
  }

  /**
   * Stops shipping after at most `closeWaitMs` for what is pending (a call that fails meanwhile
   * is not retried: the worker is going); spill files are closed (their paths are gone already).
   */
  async close(): Promise<void> {
    this.#closing = true;
    const deadline = Date.now() + (this.options.closeWaitMs ?? DEFAULT_OUTPUT_SHIPPER_OPTIONS.closeWaitMs);
    while (Date.now() < deadline && [...this.#executions.values()].some((output) => !output.done)) {
      this.flush();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const output of this.#executions.values()) output.closeSpill();
    this.#executions.clear();
    for (const file of this.#freeSpillFiles.splice(0)) removeSpillFile(file);
  }

  /**
   * A spill file for an execution: a free one (its pages already the file's), else a new one,
   * unlinked as soon as it is open. Nothing reads a spill file by its path (the shipper keeps its
   * descriptor), so none is left in `spillDir` whatever ends the worker: a killed worker's files,
   * a command's unmasked lines among them, go with its descriptors, not kept for good under
   * `.mpd/output-spill/<worker id>/` (they were, before: removed only by the `close()` of the
   * process that made them). Only the worker's user could open it meanwhile (0600; through
   * `/proc/<pid>/fd` once unlinked). Throws what the file system throws (the caller drops the
   * lines and says so).
   */
  takeSpillFile(): SpillFile {
    const free = this.#freeSpillFiles.pop();
    if (free) return free;
    mkdirSync(this.spillDir, { recursive: true });
    const path = join(this.spillDir, `${process.pid}-${this.#spillFileNames++}.spill`);
    const fd = openSync(path, 'w+', 0o600);
    try {
      unlinkSync(path);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    return { fd, extent: 0 };
  }

  /**
   * Takes back an execution's spill file once its output is shipped (or the shipper closes):
   * overwritten with zeros from its start to its extent, then kept open for the next execution
   * (at most {@link MAX_FREE_SPILL_FILES}; once closed, none), else closed — either way none of
   * the execution's lines, masked or not, stays in it. A file that cannot be zeroed is closed.
   */
  releaseSpillFile(file: SpillFile): void {
    if (this.#closed || this.#closing || this.#freeSpillFiles.length >= MAX_FREE_SPILL_FILES) {
      removeSpillFile(file);
      return;
    }
    try {
      zeroSpillFile(file);
      this.#freeSpillFiles.push(file);
    } catch {
      removeSpillFile(file);
    }
  }

  private send(output: ExecutionOutput): void {
    if (output.sending || output.done || this.#closed) return;
    try {
      output.refill(this.#maxBatchLines);
    } catch (error) {
      // The spill file could not be read back: what it held is gone (counted as dropped).
      this.logger.warn({ err: error, executionId: output.executionId }, 'could not read module output back from disk');
      output.loseSpill();
    }
    if (output.lineCount === 0 && !output.ended) return;
    output.sending = true;
    output.sent = true;
    const call = this.call(output).finally(() => {
      this.#inFlight.delete(call);
      output.sending = false;
      if (output.done) {
        output.closeSpill();
        this.#executions.delete(output.executionId);
      } else if (output.lineCount > 0 || !output.drained || output.ended) {
        this.pending(output);
      }
    });
    this.#inFlight.add(call);
  }

  private async call(output: ExecutionOutput): Promise<void> {
    const lines: string[] = [];
    let count = 0;
    // The body around its lines (workerId, fromSeq, final), at most.
    let bytes = this.options.workerId.length * 6 + 100;
    for (const pending of output.lines) {
      const room = this.#maxBatchLines - count;
      if (room <= 0 || bytes + pending.bytes + 1 > LIMITS.output.maxBatchBytes) {
        // The first lines of a run of plain lines that does not fit whole (plain: bytes are characters).
        if (room > 0 && pending.count > 1) {
          const [head] = splitPending(pending, room, LIMITS.output.maxBatchBytes - bytes - 1);
          if (bytes + head.bytes + 1 <= LIMITS.output.maxBatchBytes) {
            lines.push(head.json);
            count += head.count;
          }
        }
        break;
      }
      if (pending.count > room) {
        const [head] = splitPending(pending, room);
        lines.push(head.json);
        count += head.count;
        break;
      }
      lines.push(pending.json);
      count += pending.count;
      bytes += pending.bytes + 1;
    }
    // The last batch closes the log: everything written is in it.
    const final = output.ended && output.drained && count === output.lineCount;
    // The contract's OutputBatch, joined from the lines' JSON (see Pending).
    const body = new JsonText(
      `{"workerId":${JSON.stringify(this.options.workerId)},"fromSeq":${output.firstSeq},"lines":[${lines.join(',')}]${final ? ',"final":true' : ''}}`,
    );
    try {
      const response = await this.options.client.executions.output({
        params: { executionId: output.executionId },
        body: body as unknown as OutputBatch,
        extraHeaders: bearerHeader(this.options.credential()),
        deadlineMs: this.options.callDeadlineMs ?? DEFAULT_OUTPUT_SHIPPER_OPTIONS.callDeadlineMs,
      });
      if (response.status === 200) {
        output.acceptedThrough(response.body.acceptedThrough);
        output.failures = 0;
        if (final && output.lineCount === 0) output.done = true;
        return;
      }
      if (response.status === 409 && 'expectedSeq' in response.body) {
        const { expectedSeq } = response.body;
        if (expectedSeq < output.firstSeq) {
          // It lost lines it had accepted: they are gone here too, so sending again cannot help.
          this.logger.warn(
            { executionId: output.executionId, expectedSeq, firstSeq: output.firstSeq },
            'the orchestrator expects output lines this worker no longer has; dropped',
          );
          output.done = true;
          return;
        }
        // Lines before expectedSeq were accepted (an answer was lost): send from there.
        output.acceptedThrough(expectedSeq);
        return;
      }
      if (response.status === 404) {
        // The run ended, or the orchestrator restarted: no one takes these lines any more.
        this.logger.debug(
          { executionId: output.executionId },
          "the orchestrator no longer takes this execution's output; dropped",
        );
        output.done = true;
        return;
      }
      this.failed(output, `answered ${response.status}`);
    } catch (error) {
      this.failed(output, error instanceof Error ? error.message : String(error));
    }
  }

  private failed(output: ExecutionOutput, why: string): void {
    if (this.#closing) {
      this.logger.warn(
        { executionId: output.executionId, why },
        'could not ship the last module output before closing; dropped',
      );
      output.done = true;
      return;
    }
    const delay = backoffDelay(output.failures++, this.options.initialBackoffMs, this.options.maxBackoffMs);
    output.retryAt = Date.now() + delay;
    if (output.failures === 1) {
      this.logger.warn(
        { executionId: output.executionId, why, retryInMs: delay },
        'could not ship module output; retrying',
      );
    }
  }
}
