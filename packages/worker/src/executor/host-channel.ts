/**
 * The channel between the worker and a module host: a pipe of their own (the host's
 * {@link HOST_CHANNEL_FD}), each message one line of JSON (newline-delimited JSON: `JSON.stringify`
 * escapes every newline inside a value, so a message's only newline is its last byte), written
 * with one `write`. Not node's IPC channel (`fork`, `process.send`): its reading side split each
 * read into messages through a generator and a string decoder and handed each on through
 * `process.nextTick`, 27 % of a host's main thread per no-op module (issue 14, round I's profile);
 * here a read is split at its newline bytes and each line parsed where it is read (see the
 * README's "The worker ↔ host hop (issue 14, round J)").
 */
import { type OnReadOpts, Socket, type SocketConstructorOpts } from 'node:net';

/**
 * The file descriptor, in a module host, of its channel with the worker (where node's IPC
 * channel was): the worker's messages come in on it, the host's go out on it.
 */
export const HOST_CHANNEL_FD = 3;

/** The size of the buffer a host reads its channel into (bytes): libuv's own read size. */
const READ_BUFFER_BYTES = 64 * 1024;

/**
 * Cuts the bytes of a channel into its messages: each line (up to a `\n` byte, which no UTF-8
 * sequence of another character holds) is parsed as JSON and handed to `onMessage` at once, in
 * order. A line cut between reads waits (copied) for its end; the bytes after the last newline
 * of a channel that ends are not a message (a host that died mid-message sent none).
 */
export class MessageLines<In = unknown> {
  /** The start of a message whose end has not been read yet, in pieces. */
  private pending: Buffer[] = [];

  /**
   * @param onMessage gets each message, parsed.
   * @param onBroken gets a line that is not JSON (the error of `JSON.parse`): the channel is
   *   not one of ours, or something else wrote on it; the lines after it are still read.
   */
  constructor(
    private readonly onMessage: (message: In) => void,
    private readonly onBroken: (error: unknown) => void,
  ) {}

  /** Takes the bytes `chunk[0, length)` of the channel (they may be overwritten once this returns). */
  push(chunk: Buffer, length = chunk.length): void {
    let start = 0;
    let newline = chunk.indexOf(0x0a, 0);
    while (newline >= 0 && newline < length) {
      let text: string;
      if (this.pending.length === 0) text = chunk.toString('utf8', start, newline);
      else {
        this.pending.push(chunk.subarray(start, newline));
        text = Buffer.concat(this.pending).toString('utf8');
        this.pending = [];
      }
      start = newline + 1;
      let message: In;
      try {
        message = JSON.parse(text) as In;
      } catch (error) {
        this.onBroken(error);
        newline = chunk.indexOf(0x0a, start);
        continue;
      }
      this.onMessage(message);
      newline = chunk.indexOf(0x0a, start);
    }
    if (start < length) this.pending.push(Buffer.from(chunk.subarray(start, length)));
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
 * The host's end of its channel ({@link HOST_CHANNEL_FD}), read into one buffer of its own
 * (net's `onread`: no stream buffering per read). `onMessage` gets each message of the worker in
 * order; `onClosed` once the channel ended or failed (the worker is gone), once.
 * @throws from `net.Socket` when the descriptor is not open (the host was not started by a worker).
 */
export function openHostChannel<In>(onMessage: (message: In) => void, onClosed: () => void): Socket {
  const lines = new MessageLines<In>(onMessage, (error) => {
    // Not the worker's message: the channel cannot be trusted, as when it closes.
    process.stderr.write(`module host: a line on its channel with the worker is not JSON (${String(error)})\n`);
    onClosed();
  });
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
