import { closeSync, mkdirSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { bearerHeader, JsonText, type OrchestratorClient } from '@mpd/client';
import type { OutputBatch, OutputLevel, OutputStream } from '@mpd/contract';
import { LIMITS } from '@mpd/contract/limits';
import { backoffDelay } from '@mpd/server-kit';
import type { Logger } from 'pino';
import { type ModuleOutput, type OutputWriter, splitLines } from '../executor/module-output.js';

/**
 * The output one execution keeps in the worker's memory while it waits to be shipped, by default:
 * 1 MiB (about 6,000 lines of 100 characters), the worker's `--output-buffer-size`.
 */
export const DEFAULT_OUTPUT_BUFFER_BYTES = 1024 * 1024;

/**
 * The output one execution keeps in its spill file once its buffer is full, by default: 64 MiB
 * (about 480,000 lines of 100 characters: minutes of a loud build while the orchestrator is
 * unreachable), the worker's `--output-spill-size`.
 */
export const DEFAULT_OUTPUT_SPILL_BYTES = 64 * 1024 * 1024;

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
  /** How often pending lines are sent (ms). @default 200 */
  flushIntervalMs?: number;
  /** Lines per batch (at most the contract's `LIMITS.output.maxLinesPerBatch`); a batch this full is sent at once. @default 1,000 (the contract's most) */
  maxBatchLines?: number;
  /**
   * Output kept in memory per execution (each line counted as the most bytes its JSON takes in a
   * batch) before lines spill to disk. @default 1 MiB ({@link DEFAULT_OUTPUT_BUFFER_BYTES})
   */
  bufferBytesPerExecution?: number;
  /**
   * Bytes of spill file per execution: past it lines are dropped, and one line saying how many
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

/** Bytes of spilled lines kept pending before they are written without waiting for the tick's end (bounds memory in a burst). */
const SPILL_FLUSH_BYTES = 256 * 1024;

/** The most bytes of a spill file read back at once (room for its longest line: 16,384 characters of up to 6 bytes of JSON each). */
const SPILL_READ_BYTES = 256 * 1024;

/** Any character but printable ASCII other than `"` and `\`: JSON escapes it, or UTF-8 takes more than a byte for it. */
const NOT_PLAIN = /[^\x20\x21\x23-\x5b\x5d-\x7e]/;

/** A character UTF-8 takes more than a byte for. */
const NOT_ASCII = /[^\x00-\x7f]/;

/**
 * A line as it waits to be sent: its JSON (an element of a batch's `lines`), and that JSON's size
 * in UTF-8 bytes. Kept as JSON from the start, in memory and in the spill file, and a batch's body
 * joined from it ({@link JsonText}): serialising line objects per batch, and parsing spilled lines
 * back into objects, cost more than everything else the shipper did per line (`pnpm bench`,
 * benchmark 5).
 */
interface Pending {
  json: string;
  bytes: number;
}

/**
 * `line` as JSON (the contract's `outputLineSchema`), made by hand for plain ASCII text, which
 * most output is (nothing to escape: its size is its length); by `JSON.stringify` otherwise.
 */
function pendingLine(time: number, stream: OutputStream, level: OutputLevel | undefined, text: string): Pending {
  const plain = !NOT_PLAIN.test(text);
  const json = `{"time":${time},"stream":"${stream}"${level === undefined ? '' : `,"level":"${level}"`},"text":${plain ? `"${text}"` : JSON.stringify(text)}}`;
  return { json, bytes: plain ? json.length : Buffer.byteLength(json) };
}

/** One execution's output on its way. */
class ExecutionOutput implements OutputWriter {
  /** The sequence number of `memory[0]` (every line before it was accepted). */
  firstSeq = 0;
  /** Lines not yet accepted, in order (those of the spill file come after them). */
  readonly memory: Pending[] = [];
  memoryBytes = 0;
  /**
   * The spill file (each line's JSON on a line of its own), from the first line spilled to the execution's
   * end: once every line in it is read back it is written again from its start (removing it and
   * making it again each time the shipping caught up cost as much as writing it). `used`
   * counts the wire bytes of every line spilled (what `spillBytesPerExecution` bounds: at least
   * their bytes in the file), `size` the bytes in the file, `read` those read back: the lines
   * spilled since the last write wait in `pending` (`pendingBytes` of wire bytes) for one write
   * per tick, as one write per line cost 1.84 s of CPU for 200,000 lines (`pnpm bench`).
   */
  spill:
    | {
        fd: number;
        path: string;
        used: number;
        size: number;
        read: number;
        pending: Pending[];
        pendingBytes: number;
        /**
         * Whether every line in the file (and pending) is ASCII: written and read back as latin1,
         * which costs a copy, where UTF-8 is decoded (the most costly step of reading it back).
         */
        ascii: boolean;
        /** Where it is read back, made at the first read and kept (one per spilling execution, not one per read). */
        chunk: Buffer | undefined;
      }
    | undefined;
  /** A flush of the spill's pending lines is scheduled (setImmediate). */
  private flushScheduled = false;
  /** Lines dropped since the last marker, past the spill bound. */
  dropped = 0;
  ended = false;
  /** The final batch was accepted (or the orchestrator no longer knows the execution). */
  done = false;
  sending = false;
  failures = 0;
  retryAt = 0;

  constructor(
    readonly executionId: string,
    private readonly shipper: OutputShipper,
  ) {}

  write(stream: OutputStream, text: string, level?: OutputLevel): void {
    // Done: the orchestrator no longer takes this execution's output (nothing is kept for it).
    if (this.ended || this.done) return;
    const time = Date.now();
    for (const piece of splitLines(text)) this.add(pendingLine(time, stream, level, piece));
    this.shipper.pending(this);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.shipper.pending(this);
  }

  private add(pending: Pending): void {
    const { bufferBytesPerExecution, spillBytesPerExecution } = this.shipper.bounds;
    if (!this.spilled && this.dropped === 0 && this.memoryBytes + pending.bytes <= bufferBytesPerExecution) {
      this.memory.push(pending);
      this.memoryBytes += pending.bytes;
      return;
    }
    if (
      this.dropped > 0 ||
      (this.spill?.used ?? 0) + pending.bytes > spillBytesPerExecution ||
      !this.spillLine(pending)
    ) {
      this.dropped++;
    }
  }

  /**
   * Appends a line to the spill file (made at the first; false when it cannot be): kept pending
   * and written with the others of this tick, at once past {@link SPILL_FLUSH_BYTES}.
   */
  private spillLine(pending: Pending): boolean {
    try {
      if (!this.spill) {
        mkdirSync(this.shipper.spillDir, { recursive: true });
        const path = join(this.shipper.spillDir, `${encodeURIComponent(this.executionId)}.spill`);
        this.spill = {
          fd: openSync(path, 'w+'),
          path,
          used: 0,
          size: 0,
          read: 0,
          pending: [],
          pendingBytes: 0,
          ascii: true,
          chunk: undefined,
        };
      }
    } catch (error) {
      this.shipper.logger.warn({ err: error, executionId: this.executionId }, 'could not spill module output to disk');
      return false;
    }
    this.spill.pending.push(pending);
    // A line's JSON is ASCII when its bytes are as many as its characters.
    if (pending.bytes !== pending.json.length) this.spill.ascii = false;
    this.spill.pendingBytes += pending.bytes;
    this.spill.used += pending.bytes;
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
   * Writes the spill's pending lines in one write. When it fails they count as dropped (as a line
   * whose write failed always did), and so does every line after them until the spill is read back.
   */
  private flushSpill(): void {
    const spill = this.spill;
    if (!spill || spill.pending.length === 0) return;
    let text = '';
    for (const pending of spill.pending) text += `${pending.json}\n`;
    const buffer = Buffer.from(text, spill.ascii ? 'latin1' : 'utf8');
    const lines = spill.pending.length;
    spill.used -= spill.pendingBytes;
    spill.pending = [];
    spill.pendingBytes = 0;
    try {
      for (let done = 0; done < buffer.length;)
        done += writeSync(spill.fd, buffer, done, buffer.length - done, spill.size + done);
      spill.size += buffer.length;
      spill.used += buffer.length;
    } catch (error) {
      this.shipper.logger.warn({ err: error, executionId: this.executionId }, 'could not spill module output to disk');
      this.dropped += lines;
    }
  }

  /** Moves spilled lines back to memory (up to its bound), and a marker for dropped lines once there is room. */
  refill(): void {
    const { bufferBytesPerExecution } = this.shipper.bounds;
    this.flushSpill();
    if (this.spill) {
      const spill = this.spill;
      // Room for the longest line (16,384 characters, each up to 6 bytes escaped, and the rest of
      // its JSON), and about as many lines as memory has room for: what is read and not taken is
      // decoded again next time.
      const room = Math.max(128 * 1024, bufferBytesPerExecution - this.memoryBytes);
      const chunk = (spill.chunk ??= Buffer.allocUnsafe(SPILL_READ_BYTES));
      const most = Math.min(SPILL_READ_BYTES, room);
      while (spill.read < spill.size && this.memoryBytes < bufferBytesPerExecution) {
        const got = readSync(spill.fd, chunk, 0, Math.min(most, spill.size - spill.read), spill.read);
        const last = chunk.lastIndexOf(0x0a, got - 1);
        if (last < 0) break;
        // The whole lines of the chunk decoded at once, then taken line by line while memory has
        // room: the rest is read again from where this stops.
        const text = chunk.toString(spill.ascii ? 'latin1' : 'utf8', 0, last);
        let start = 0;
        let taken = 0;
        while (start <= text.length && this.memoryBytes < bufferBytesPerExecution) {
          let end = text.indexOf('\n', start);
          if (end < 0) end = text.length;
          const json = text.slice(start, end);
          const bytes = spill.ascii || !NOT_ASCII.test(json) ? json.length : Buffer.byteLength(json);
          this.memory.push({ json, bytes });
          this.memoryBytes += bytes;
          taken += bytes + 1;
          start = end + 1;
        }
        spill.read += taken;
      }
      if (spill.read >= spill.size) {
        // Every line in it was read back: written again from its start.
        spill.read = 0;
        spill.size = 0;
        spill.used = 0;
        spill.ascii = true;
      }
    }
    if (!this.spilled && this.dropped > 0) {
      const text = `[mpd] ${this.dropped} line(s) of output dropped: the worker could not ship them to the orchestrator in time and its buffer for this execution was full`;
      const marker = pendingLine(Date.now(), 'stderr', undefined, text);
      this.memory.push(marker);
      this.memoryBytes += marker.bytes;
      this.dropped = 0;
    }
  }

  /** Whether lines wait in the spill file (they come after those in memory). */
  get spilled(): boolean {
    return this.spill !== undefined && (this.spill.size > this.spill.read || this.spill.pending.length > 0);
  }

  /** Closes and removes the spill file (the execution's output is done, or the shipper closes). */
  closeSpill(): void {
    if (!this.spill) return;
    try {
      closeSync(this.spill.fd);
      rmSync(this.spill.path, { force: true });
    } catch {
      // Gone already: nothing to keep.
    }
    this.spill = undefined;
  }

  /** Forgets the lines before `seq` (accepted). */
  acceptedThrough(seq: number): void {
    const count = Math.min(seq - this.firstSeq, this.memory.length);
    if (count <= 0) return;
    for (let index = 0; index < count; index++) this.memoryBytes -= this.memory[index]!.bytes;
    this.memory.splice(0, count);
    this.firstSeq += count;
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

  /** An execution has lines (or its end) to send: at once when a batch is full or it ended, else at the next tick. */
  pending(output: ExecutionOutput): void {
    if (this.#closed) return;
    if (output.retryAt <= Date.now() && (output.ended || output.memory.length >= this.#maxBatchLines)) {
      this.send(output);
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
   * is not retried: the worker is going); spill files are removed.
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
  }

  private send(output: ExecutionOutput): void {
    if (output.sending || output.done || this.#closed) return;
    output.refill();
    if (output.memory.length === 0 && !output.ended) return;
    output.sending = true;
    const call = this.call(output).finally(() => {
      this.#inFlight.delete(call);
      output.sending = false;
      if (output.done) {
        output.closeSpill();
        this.#executions.delete(output.executionId);
      } else if (output.memory.length > 0 || output.spilled || output.ended) {
        this.pending(output);
      }
    });
    this.#inFlight.add(call);
  }

  private async call(output: ExecutionOutput): Promise<void> {
    const lines: string[] = [];
    // The body around its lines (workerId, fromSeq, final), at most.
    let bytes = this.options.workerId.length * 6 + 100;
    for (const { json, bytes: size } of output.memory) {
      if (lines.length >= this.#maxBatchLines || bytes + size + 1 > LIMITS.output.maxBatchBytes) break;
      lines.push(json);
      bytes += size + 1;
    }
    // The last batch closes the log: everything written is in it.
    const final = output.ended && !output.spilled && output.dropped === 0 && lines.length === output.memory.length;
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
        if (final && output.memory.length === 0) output.done = true;
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
