import type { OutputLevel, OutputStream } from '@mpd/contract';
import { LIMITS } from '@mpd/contract/limits';

/** Where one execution's output lines go (masked by the caller). */
export interface OutputWriter {
  /**
   * One line (or several: `text` is split at its line breaks, and into pieces of at most
   * `LIMITS.output.maxLineLength` characters, each a line of its own).
   */
  write(stream: OutputStream, text: string, level?: OutputLevel): void;
  /**
   * A block of a command's (or a module host's) whole lines as the bytes it wrote, each line
   * ending with `\n`, not masked yet: the writer keeps them as they are and masks them with `mask`
   * (the whole block at once: a secret is never cut in two) once it makes them into lines, off
   * the command's way (`pnpm bench`, benchmark 5). Optional: without it, the caller decodes and
   * masks the block and gives it to {@link OutputWriter.write}.
   */
  writeBytes?(stream: 'stdout' | 'stderr', lines: Buffer, mask: (text: string) => string): void;
  /** No line follows: the execution's log is closed once what it wrote is shipped. */
  end(): void;
}

/** What takes the output of the worker's executions (the shipper, with an orchestrator). */
export interface ModuleOutput {
  /** The writer of `executionId`'s lines, from its first to its last. */
  open(executionId: string): OutputWriter;
  /**
   * Whether `executionId`'s output ended with no line written and nothing sent for it yet: then
   * it is forgotten and no batch is ever sent for it, not even the final one (the execute answer
   * says so instead: `Mpd-Output: none`). False, and nothing changes, in every other case.
   */
  endEmpty?(executionId: string): boolean;
}

/** A writer that keeps nothing (no orchestrator to ship to). */
export const DISCARD_OUTPUT: OutputWriter = {
  write: () => undefined,
  writeBytes: () => undefined,
  end: () => undefined,
};

/**
 * Writes a block of whole lines as bytes (each ending with `\n`) to `output`: as they are when it
 * takes bytes ({@link OutputWriter.writeBytes}), else decoded, masked and without its last `\n`.
 */
export function writeLineBytes(
  output: OutputWriter,
  stream: 'stdout' | 'stderr',
  lines: Buffer,
  mask: (text: string) => string,
): void {
  if (output.writeBytes) output.writeBytes(stream, lines, mask);
  else output.write(stream, mask(lines.toString('utf8', 0, lines.length - 1)));
}

/**
 * `text` as lines for the wire: split at line breaks (`\n`, `\r\n`), each cut into pieces of at
 * most `maxLength`. `text` may be a block of many lines (see {@link LineSplitter}): a command's
 * output arrives a pipe read at a time, and one split of a block costs far less than a call per
 * line (`pnpm bench`, benchmark 5).
 */
export function splitLines(text: string, maxLength: number = LIMITS.output.maxLineLength): string[] {
  const split = text.indexOf('\r') < 0 ? text.split('\n') : text.split(/\r?\n/);
  let long = false;
  for (const line of split) if (line.length > maxLength) long = true;
  if (!long) return split;
  const lines: string[] = [];
  for (const line of split) {
    if (line.length <= maxLength) {
      lines.push(line);
      continue;
    }
    for (let start = 0; start < line.length; start += maxLength) lines.push(line.slice(start, start + maxLength));
  }
  return lines;
}

/**
 * Splits a stream's chunks into blocks of whole lines: each chunk's complete lines are given at
 * once, as one text (lines separated by `\n` or `\r\n`, no line break at its end; `''` is one
 * empty line), for the receiver to split with {@link splitLines}; the last, unfinished line
 * waits for the next chunk, or {@link LineSplitter.flush}. An unfinished line longer than
 * `maxLength` is given in pieces as it comes (never cut inside one of its `secrets`), so no
 * partial line grows without bound. A block
 * per chunk, not a call per line: 200,000 lines cost 200,000 pipe writes in a module host and
 * as many calls on the worker (`pnpm bench`, benchmark 5).
 */
export class LineSplitter {
  private partial = '';
  /** Bytes an unfinished line waits for past `maxLength` before it is cut: see {@link secretSafeCut}. */
  private readonly lookahead: number;

  constructor(
    private readonly onLines: (lines: string) => void,
    private readonly maxLength: number = LIMITS.output.maxLineLength,
    /**
     * The execution's secret values (those the masker masks): a cut never falls inside one (see
     * {@link secretSafeCut}). @default none
     */
    private readonly secrets: readonly string[] = NO_SECRETS,
  ) {
    this.lookahead = longest(secrets);
  }

  push(chunk: string): void {
    const last = chunk.lastIndexOf('\n');
    if (last < 0) {
      this.partial += chunk;
    } else {
      let block = this.partial === '' ? chunk.slice(0, last) : this.partial + chunk.slice(0, last);
      this.partial = chunk.slice(last + 1);
      if (block.endsWith('\r')) block = block.slice(0, -1);
      this.onLines(block);
    }
    while (this.partial.length > this.maxLength + this.lookahead) {
      let cut = this.maxLength;
      if (this.secrets.length > 0) cut = secretSafeCut(this.partial, cut, this.secrets, findInString);
      this.onLines(this.partial.slice(0, cut));
      this.partial = this.partial.slice(cut);
    }
  }

  flush(): void {
    if (this.partial === '') return;
    // What waited for a secret's end (see `lookahead`) is cut now, as push would have.
    while (this.partial.length > this.maxLength) {
      const cut = secretSafeCut(this.partial, this.maxLength, this.secrets, findInString);
      if (cut >= this.partial.length) break;
      this.onLines(this.partial.slice(0, cut));
      this.partial = this.partial.slice(cut);
    }
    const line = this.partial;
    this.partial = '';
    this.onLines(line);
  }
}

/** No secret values (a splitter's default). */
const NO_SECRETS: readonly never[] = [];

/** An execution's secret values (as the masker keeps them: longest first) as the bytes a {@link ByteLineSplitter} cuts around; undefined for none. */
export function secretBytes(values: readonly string[]): readonly Buffer[] | undefined {
  return values.length === 0 ? undefined : values.map((value) => Buffer.from(value));
}

/** The length of the longest of `secrets`, less one (0 for none): how far past a cut one may reach. */
function longest(secrets: readonly { length: number }[]): number {
  let most = 0;
  for (const secret of secrets) most = Math.max(most, secret.length - 1);
  return most;
}

/** Where `secret` first occurs within `[from, to)` of `text`, or -1. */
type FindIn<T> = (text: T, secret: T, from: number, to: number) => number;

const findInString: FindIn<string> = (text, secret, from, to) => {
  const at = text.slice(from, to).indexOf(secret);
  return at < 0 ? -1 : from + at;
};

const findInBuffer: FindIn<Buffer> = (text, secret, from, to) => {
  const at = text.subarray(from, to).indexOf(secret);
  return at < 0 ? -1 : from + at;
};

/**
 * Where to cut `text` near `cut` so that no occurrence of a secret value spans the cut: the
 * worker masks each piece of a cut line alone, so a secret cut in two would leave the worker in
 * two unmasked halves (README, "Secrets in modules"). A cut inside an occurrence moves back to the
 * occurrence's start, again until no occurrence spans it; one that reaches an occurrence at the
 * text's start moves on to that occurrence's end and stops there: a secret longer than the piece
 * (the piece is then longer than the bound, by at most the secret's length), or one that repeats
 * itself (`abab` in `ababab…`, where every cut is inside some occurrence; the masker masks the
 * leftmost ones, `abab` at 0 among them). Only the window an occurrence spanning the cut can lie
 * in is searched (`[cut − length + 1, cut + length − 1)` per secret): the caller has the text up
 * to `cut + length − 1`. Secret values start and end between two UTF-8 characters, so a cut moved
 * to one's edge stays between characters. `secrets`: longest first, as the masker masks them.
 */
export function secretSafeCut<T extends { readonly length: number }>(
  text: T,
  cut: number,
  secrets: readonly T[],
  find: FindIn<T>,
): number {
  for (let moved = true; moved;) {
    moved = false;
    for (const secret of secrets) {
      const at = find(text, secret, Math.max(0, cut - secret.length + 1), cut + secret.length - 1);
      if (at < 0) continue;
      if (at === 0) return secret.length;
      cut = at;
      moved = true;
    }
  }
  return cut;
}

/** A newline, as bytes. */
export const NEWLINE = Buffer.from('\n');

/**
 * {@link LineSplitter} on bytes: gives each chunk's whole lines at once as one buffer of the bytes
 * as they came, each line ending with its `\n` (no decoding, no copy: a module host passes a
 * command's lines on to its own stdout as they are, where decoding them and encoding them again
 * cost as much as everything else it did); a line begun in an earlier chunk is given first, alone
 * (its pieces joined), so that a chunk is never copied. The last, unfinished line waits for the next chunk, or
 * {@link ByteLineSplitter.flush}; one longer than `maxBytes` is given in pieces as it comes (cut
 * between two UTF-8 characters and never inside one of {@link ByteLineSplitter.secrets}, each
 * piece ended with a `\n`), so no partial line grows without bound.
 */
export class ByteLineSplitter {
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private secretValues: readonly Buffer[] = NO_SECRETS;
  /** Bytes an unfinished line waits for past `maxBytes` before it is cut: see {@link secretSafeCut}. */
  private lookahead = 0;

  constructor(
    private readonly onLines: (lines: Buffer) => void,
    private readonly maxBytes: number = LIMITS.output.maxLineLength,
    secrets: readonly Buffer[] = NO_SECRETS,
  ) {
    this.secrets = secrets;
  }

  /**
   * The secret values (UTF-8) of the execution whose lines this splits (those its masker masks): a
   * cut never falls inside one (see {@link secretSafeCut}). Settable: a module host's pipe carries
   * one execution after another. @default none
   */
  get secrets(): readonly Buffer[] {
    return this.secretValues;
  }

  set secrets(values: readonly Buffer[]) {
    this.secretValues = values;
    this.lookahead = longest(values);
  }

  push(chunk: Buffer): void {
    const last = chunk.lastIndexOf(0x0a);
    if (last < 0) {
      this.partial.push(chunk);
      this.partialBytes += chunk.length;
    } else {
      let whole = chunk.subarray(0, last + 1);
      if (this.partialBytes > 0) {
        // The line begun in earlier chunks, completed: the one line copied, not the chunk (a copy
        // of every read of a command's pipe cost a module host 3 ms per 20 MB, `pnpm bench`
        // benchmark 5), then the chunk's other whole lines as they came.
        const first = chunk.indexOf(0x0a) + 1;
        this.onLines(Buffer.concat([...this.partial, chunk.subarray(0, first)]));
        whole = chunk.subarray(first, last + 1);
      }
      if (whole.length > 0) this.onLines(whole);
      const rest = chunk.subarray(last + 1);
      this.partial = rest.length > 0 ? [rest] : [];
      this.partialBytes = rest.length;
    }
    // With secrets, the line waits until the bytes a secret spanning the cut could reach are in.
    if (this.partialBytes <= this.maxBytes + this.lookahead) return;
    let rest: Buffer = Buffer.concat(this.partial);
    while (rest.length > this.maxBytes + this.lookahead) rest = this.givePiece(rest);
    this.partial = rest.length > 0 ? [rest] : [];
    this.partialBytes = rest.length;
  }

  flush(): void {
    if (this.partialBytes === 0) return;
    let rest: Buffer = Buffer.concat(this.partial);
    this.partial = [];
    this.partialBytes = 0;
    // What waited for a secret's end (see `lookahead`) is cut now, as push would have.
    while (rest.length > this.maxBytes) rest = this.givePiece(rest);
    if (rest.length > 0) this.onLines(Buffer.concat([rest, NEWLINE]));
  }

  /** Gives the first piece of `rest` (longer than `maxBytes`), ended with a `\n`; returns what is left. */
  private givePiece(rest: Buffer): Buffer {
    let cut = this.maxBytes;
    if (this.secretValues.length > 0) cut = secretSafeCut(rest, cut, this.secretValues, findInBuffer);
    if (cut >= rest.length) {
      // A secret longer than the piece, up to the end of what came: the rest is one piece.
      this.onLines(Buffer.concat([rest, NEWLINE]));
      return rest.subarray(rest.length);
    }
    // Not inside a character: back to the first byte of the one the cut falls in.
    const at = cut;
    while (cut > 0 && (rest[cut]! & 0xc0) === 0x80) cut--;
    if (cut === 0) cut = at;
    this.onLines(Buffer.concat([rest.subarray(0, cut), NEWLINE]));
    return rest.subarray(cut);
  }
}
