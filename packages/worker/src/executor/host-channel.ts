/**
 * The channel between the worker and a module host: a pipe of their own (the host's
 * {@link HOST_CHANNEL_FD}), each message one line of JSON (newline-delimited JSON: `JSON.stringify`
 * escapes every newline inside a value, so a message's only newline is its last byte), written
 * with one `write`. Not node's IPC channel (`fork`, `process.send`): its reading side split each
 * read into messages through a generator and a string decoder and handed each on through
 * `process.nextTick`, 27 % of a host's main thread per no-op module (issue 14, round I's profile);
 * here a read is split at its newline bytes and each line parsed where it is read (see
 * docs/performance.md "The worker ↔ host hop (issue 14, round J)").
 */
import { writeSync } from 'node:fs';
import { type OnReadOpts, Socket, type SocketConstructorOpts } from 'node:net';

/**
 * The file descriptor, in a module host, of its channel with the worker (where node's IPC
 * channel was): the worker's messages come in on it, the host's go out on it.
 */
export const HOST_CHANNEL_FD = 3;

/** The size of the buffer a host reads its channel into (bytes): libuv's own read size. */
const READ_BUFFER_BYTES = 64 * 1024;

/**
 * The most bytes a line of a channel may hold by default (its newline not counted): 64 MiB, far
 * below V8's longest string (2^29 − 24 characters, which `Buffer#toString` of a longer line
 * throws at: the worker died of a module writing 600 MiB on fd 3 without a newline). See
 * {@link channelLineLimit} for the worker's bound.
 */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

/** V8's longest string (`String::kMaxLength` on 64-bit hosts), in UTF-16 code units. */
const MAX_STRING_LENGTH = 2 ** 29 - 24;

/**
 * The bound of a line a host sends the worker (bytes): the largest legitimate message is a
 * `done` carrying a result of `maxResultBytes` (its JSON text as a JSON string, each `"` and `\`
 * two bytes: `executeAnswerLimit`, which holds 64 KiB of envelope), or a batch of log lines (the
 * host sends one once it holds about `HOST_LOG_BATCH_BYTES`, see `module-host-main.ts`);
 * at least {@link DEFAULT_MAX_LINE_BYTES}, at most V8's longest string.
 */
export function channelLineLimit(maxResultBytes: number): number {
  return Math.min(Math.max(2 * maxResultBytes + 64 * 1024, DEFAULT_MAX_LINE_BYTES), MAX_STRING_LENGTH);
}

/**
 * Cuts the bytes of a channel into its messages: each line (up to a `\n` byte, which no UTF-8
 * sequence of another character holds) is parsed as JSON and handed to `onMessage` at once, in
 * order. A line cut between reads waits (copied) for its end; the bytes after the last newline
 * of a channel that ends are not a message (a host that died mid-message sent none).
 *
 * The channel **breaks** (`onBroken`, once) at a line that is not JSON, a line longer than
 * `maxLineBytes` (its bytes are not kept: the buffering stops there), or an `onMessage` that
 * throws (a message of a shape it does not take); nothing after is read: whatever wrote on the
 * channel may have cut a message of ours.
 */
export class MessageLines<In = unknown> {
  /** The start of a message whose end has not been read yet, in pieces. */
  private pending: Buffer[] = [];
  /** The bytes in {@link MessageLines.pending}. */
  private pendingBytes = 0;
  /** Whether the channel broke: nothing more is read. */
  private broken = false;

  /**
   * @param onMessage gets each message, parsed; what it throws breaks the channel.
   * @param onBroken gets why the channel broke (the error of `JSON.parse`, of `onMessage`, or
   *   one naming the line limit), once.
   * @param maxLineBytes the longest line taken (bytes, its newline not counted).
   *   @default DEFAULT_MAX_LINE_BYTES
   */
  constructor(
    private readonly onMessage: (message: In) => void,
    private readonly onBroken: (error: unknown) => void,
    private readonly maxLineBytes: number = DEFAULT_MAX_LINE_BYTES,
  ) {}

  /** Takes the bytes `chunk[0, length)` of the channel (they may be overwritten once this returns). */
  push(chunk: Buffer, length = chunk.length): void {
    if (this.broken) return;
    const bytes = length === chunk.length ? chunk : chunk.subarray(0, length);
    let start = 0;
    let newline = bytes.indexOf(0x0a, 0);
    while (newline >= 0) {
      if (this.pendingBytes + newline - start > this.maxLineBytes) return this.breakBy(this.overLimit());
      let text: string;
      if (this.pending.length === 0) text = bytes.toString('utf8', start, newline);
      else {
        this.pending.push(bytes.subarray(start, newline));
        text = Buffer.concat(this.pending).toString('utf8');
        this.pending = [];
        this.pendingBytes = 0;
      }
      start = newline + 1;
      try {
        this.onMessage(JSON.parse(text) as In);
      } catch (error) {
        return this.breakBy(error);
      }
      if (this.broken) return;
      newline = bytes.indexOf(0x0a, start);
    }
    if (start < length) {
      if (this.pendingBytes + length - start > this.maxLineBytes) return this.breakBy(this.overLimit());
      this.pending.push(Buffer.from(bytes.subarray(start, length)));
      this.pendingBytes += length - start;
    }
  }

  private overLimit(): Error {
    return new Error(`a line longer than ${this.maxLineBytes} bytes (the channel's line limit)`);
  }

  private breakBy(error: unknown): void {
    this.broken = true;
    this.pending = [];
    this.pendingBytes = 0;
    this.onBroken(error);
  }
}

/**
 * One message as the channel carries it: its JSON and a newline, to be written with one `write`.
 * @throws the error of `JSON.stringify` (a `BigInt`, a cycle): no message holds one.
 */
export function messageLine(message: unknown): string {
  return `${JSON.stringify(message)}\n`;
}

/**
 * The longest line {@link writeLine} writes with `write(2)` itself (UTF-16 code units); a longer
 * one (a large result) goes through the socket's queue, which writes what the pipe takes and the
 * rest as the reader drains it.
 */
const DIRECT_WRITE_MAX_LENGTH = 16 * 1024;

/**
 * The way {@link writeLine} writes bytes on a descriptor: `fs.writeSync` (one `write(2)`; on a
 * non-blocking descriptor it throws `EAGAIN` when the pipe is full, and may write part of the
 * bytes). The seam tests use to make it write part or nothing.
 */
export type DirectWrite = (fd: number, text: string) => number;

/**
 * Writes one message line on a channel socket whose descriptor is `fd`, in order with everything
 * written on it before: with one `write(2)` of its own when the socket has nothing queued (the
 * usual case: a module's `done`, an `execute`), else through the socket. Node's stream write of a
 * string (`Writable#write`, a `WriteWrap`, the socket's timer refresh, the `afterWrite` tick) cost a
 * module host about as much as the rest of sending `done` (issue 14, round N): the line goes
 * out the same, one write per message. What the descriptor did not take — all of it when the
 * pipe was full (`EAGAIN`), the rest of a part it took — goes through the socket's queue, after
 * which every later line does too until the queue is empty again. A write that fails otherwise
 * (`EPIPE`: the reader is gone) is made again through the socket, whose `error` closes the
 * channel as before. Nothing is written on a socket that is destroyed: its descriptor is closed,
 * and its number may be another file's by now. Nor on one that was ended (`end()`, its shutdown
 * maybe not yet made): the socket refuses the line with an `error` (`write after end`), as
 * before round N.
 * @param fd the socket's descriptor (the host's {@link HOST_CHANNEL_FD})
 * @param write @default `fs.writeSync`
 */
export function writeLine(socket: Socket, fd: number, line: string, write: DirectWrite = writeSync): void {
  if (socket.destroyed || socket.writableEnded || socket.writableLength > 0 || line.length > DIRECT_WRITE_MAX_LENGTH) {
    socket.write(line);
    return;
  }
  let written: number;
  try {
    written = write(fd, line);
  } catch {
    socket.write(line); // nothing of it was written
    return;
  }
  const bytes = Buffer.byteLength(line);
  if (written < bytes) socket.write(Buffer.from(line).subarray(written));
}

/**
 * The host's end of its channel ({@link HOST_CHANNEL_FD}), read into one buffer of its own
 * (net's `onread`: no stream buffering per read). `onMessage` gets each message of the worker in
 * order; `onClosed` once the channel ended or failed (the worker is gone), once.
 * @throws from `net.Socket` when the descriptor is not open (the host was not started by a worker).
 */
export function openHostChannel<In>(onMessage: (message: In) => void, onClosed: () => void): Socket {
  // The worker's messages are bounded by its body limit (an execute's dependency results), not
  // by this module's: only past V8's longest string (which would throw) is a line refused.
  const lines = new MessageLines<In>(
    onMessage,
    (error) => {
      // Not the worker's message: the channel cannot be trusted, as when it closes.
      process.stderr.write(`module host: a line on its channel with the worker is not a message (${String(error)})\n`);
      onClosed();
    },
    MAX_STRING_LENGTH,
  );
  // `onread` is an option of the constructor (node's docs since nodejs/node#54194; node's
  // types of this version list it only for `connect`).
  const options: SocketConstructorOpts & { onread: OnReadOpts } = {
    fd: HOST_CHANNEL_FD,
    readable: true,
    writable: true,
    onread: {
      buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
      callback: (length: number, buffer: Uint8Array): boolean => {
        lines.push(buffer as Buffer, length);
        return true;
      },
    },
  };
  const socket = new Socket(options);
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    onClosed();
  };
  socket.on('end', close);
  socket.on('close', close);
  socket.on('error', close);
  return socket;
}
