import { closeSync, mkdirSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { bearerHeader, type OrchestratorClient } from '@mpd/client';
import type { OutputLevel, OutputLine, OutputStream } from '@mpd/contract';
import { LIMITS } from '@mpd/contract/limits';
import { backoffDelay } from '@mpd/server-kit';
import type { Logger } from 'pino';
import { type ModuleOutput, type OutputWriter, splitLines } from '../executor/module-output.js';

/** The shipper's defaults (see {@link OutputShipperOptions}). */
export const DEFAULT_OUTPUT_SHIPPER_OPTIONS = {
  flushIntervalMs: 200,
  maxBatchLines: 500,
  memoryBytesPerExecution: 1024 * 1024,
  spillBytesPerExecution: 64 * 1024 * 1024,
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
  /** Lines per batch (at most the contract's `LIMITS.output.maxLinesPerBatch`); a batch this full is sent at once. @default 500 */
  maxBatchLines?: number;
  /** Text (UTF-16 units × 2, about bytes) kept in memory per execution before lines spill to disk. @default 1 MiB */
  memoryBytesPerExecution?: number;
  /**
   * Bytes of spill file per execution: past it lines are dropped, and one line saying how many
   * takes their place once there is room again (or at the end). @default 64 MiB
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

/** A line as kept before it is sent, with its JSON size on the wire. */
interface Pending {
  line: OutputLine;
  bytes: number;
}

/** One execution's output on its way. */
class ExecutionOutput implements OutputWriter {
  /** The sequence number of `memory[0]` (every line before it was accepted). */
  firstSeq = 0;
  /** Lines not yet accepted, in order (those of the spill file come after them). */
  readonly memory: Pending[] = [];
  memoryBytes = 0;
  /**
   * The spill file (lines as JSON, one per line) while it holds lines not yet read back.
   * `written` counts the bytes of every line spilled, `flushed` those in the file: the rest wait
   * in `pending` (`pendingLines` lines) for one write per tick, as one write per line cost 1.84 s
   * of CPU for 200,000 lines (`pnpm bench`).
   */
  spill:
    | {
        fd: number;
        path: string;
        written: number;
        flushed: number;
        read: number;
        pending: string[];
        pendingLines: number;
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
    for (const piece of splitLines(text))
      this.add(level === undefined ? { time, stream, text: piece } : { time, stream, level, text: piece });
    this.shipper.pending(this);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.shipper.pending(this);
  }

  private add(line: OutputLine): void {
    // Serialised once: its length here, and its text in the spill file.
    const json = JSON.stringify(line);
    const bytes = json.length + 1;
    const { memoryBytesPerExecution, spillBytesPerExecution } = this.shipper.bounds;
    if (!this.spill && this.dropped === 0 && this.memoryBytes + bytes <= memoryBytesPerExecution) {
      this.memory.push({ line, bytes });
      this.memoryBytes += bytes;
      return;
    }
    if (this.dropped > 0 || (this.spill?.written ?? 0) + bytes > spillBytesPerExecution || !this.spillLine(json)) {
      this.dropped++;
    }
  }

  /**
   * Appends a line (`json`, its JSON text) to the spill file (made at the first; false when it
   * cannot be): kept pending and written with the others of this tick, at once past
   * {@link SPILL_FLUSH_BYTES}.
   */
  private spillLine(json: string): boolean {
    try {
      if (!this.spill) {
        mkdirSync(this.shipper.spillDir, { recursive: true });
        const path = join(this.shipper.spillDir, `${encodeURIComponent(this.executionId)}.jsonl`);
        this.spill = { fd: openSync(path, 'w+'), path, written: 0, flushed: 0, read: 0, pending: [], pendingLines: 0 };
      }
    } catch (error) {
      this.shipper.logger.warn({ err: error, executionId: this.executionId }, 'could not spill module output to disk');
      return false;
    }
    const text = `${json}\n`;
    this.spill.pending.push(text);
    this.spill.pendingLines++;
    this.spill.written += Buffer.byteLength(text);
    if (this.spill.written - this.spill.flushed >= SPILL_FLUSH_BYTES) this.flushSpill();
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
    if (!spill || spill.pendingLines === 0) return;
    const buffer = Buffer.from(spill.pending.join(''));
    const lines = spill.pendingLines;
    spill.pending = [];
    spill.pendingLines = 0;
    try {
      for (let done = 0; done < buffer.length;)
        done += writeSync(spill.fd, buffer, done, buffer.length - done, spill.flushed + done);
      spill.flushed += buffer.length;
    } catch (error) {
      this.shipper.logger.warn({ err: error, executionId: this.executionId }, 'could not spill module output to disk');
      spill.written = spill.flushed;
      this.dropped += lines;
    }
  }

  /** Moves spilled lines back to memory (up to its bound), and a marker for dropped lines once there is room. */
  refill(): void {
    const { memoryBytesPerExecution } = this.shipper.bounds;
    this.flushSpill();
    if (this.spill) {
      const spill = this.spill;
      // Room for the longest line's JSON (every character escaped as `\uXXXX`: 6 bytes).
      const chunk = Buffer.alloc(Math.min(256 * 1024, spill.written - spill.read));
      while (spill.read < spill.written && this.memoryBytes < memoryBytesPerExecution) {
        const got = readSync(spill.fd, chunk, 0, Math.min(chunk.length, spill.written - spill.read), spill.read);
        let start = 0;
        let end: number;
        // Line by line, while memory has room: the rest is read again from where this stops.
        while ((end = chunk.indexOf(0x0a, start)) >= 0 && end < got && this.memoryBytes < memoryBytesPerExecution) {
          const json = chunk.toString('utf8', start, end);
          const bytes = json.length + 1;
          this.memory.push({ line: JSON.parse(json) as OutputLine, bytes });
          this.memoryBytes += bytes;
          start = end + 1;
        }
        if (start === 0) break;
        spill.read += start;
      }
      if (spill.read >= spill.written) this.closeSpill();
    }
    if (!this.spill && this.dropped > 0) {
      const text = `[mpd] ${this.dropped} line(s) of output dropped: the worker could not ship them to the orchestrator in time and its buffer for this execution was full`;
      this.memory.push({ line: { time: Date.now(), stream: 'stderr', text }, bytes: text.length + 64 });
      this.memoryBytes += text.length + 64;
      this.dropped = 0;
    }
  }

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
    while (this.firstSeq < seq && this.memory.length > 0) {
      this.memoryBytes -= this.memory.shift()!.bytes;
      this.firstSeq++;
    }
  }
}

/**
 * Ships the worker's module output to the orchestrator (`POST /api/executions/{executionId}/output`),
 * one execution at a time per call, in batches every `flushIntervalMs` (or at once when
 * `maxBatchLines` wait) with sequence numbers, so that a batch sent again after a lost answer
 * is not duplicated. A failed call is retried with the registration's backoff; lines wait in
 * memory meanwhile (`memoryBytesPerExecution`), then in a spill file under `spillDir`
 * (`spillBytesPerExecution`), then are dropped, counted, and replaced by one line saying how
 * many. An execution's last batch is `final`. Output of an execution the orchestrator no longer
 * knows (404: its run ended, or it restarted) is dropped.
 */
export class OutputShipper implements ModuleOutput {
  readonly #executions = new Map<string, ExecutionOutput>();
  readonly bounds: { memoryBytesPerExecution: number; spillBytesPerExecution: number };
  readonly spillDir: string;
  readonly logger: Logger;
  readonly #maxBatchLines: number;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #closing = false;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(private readonly options: OutputShipperOptions) {
    this.bounds = {
      memoryBytesPerExecution:
        options.memoryBytesPerExecution ?? DEFAULT_OUTPUT_SHIPPER_OPTIONS.memoryBytesPerExecution,
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
      } else if (output.memory.length > 0 || output.spill || output.ended) {
        this.pending(output);
      }
    });
    this.#inFlight.add(call);
  }

  private async call(output: ExecutionOutput): Promise<void> {
    const batch: OutputLine[] = [];
    let bytes = 0;
    for (const { line, bytes: size } of output.memory) {
      if (batch.length >= this.#maxBatchLines || bytes + size > LIMITS.output.maxBatchBytes) break;
      batch.push(line);
      bytes += size;
    }
    // The last batch closes the log: everything written is in it.
    const final = output.ended && !output.spill && output.dropped === 0 && batch.length === output.memory.length;
    try {
      const response = await this.options.client.executions.output({
        params: { executionId: output.executionId },
        body: { workerId: this.options.workerId, fromSeq: output.firstSeq, lines: batch, ...(final ? { final } : {}) },
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
