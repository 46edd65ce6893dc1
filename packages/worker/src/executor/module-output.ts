import type { OutputLevel, OutputStream } from '@mpd/contract';
import { LIMITS } from '@mpd/contract/limits';

/** Where one execution's output lines go (masked by the caller). */
export interface OutputWriter {
  /**
   * One line (or several: `text` is split at its line breaks, and into pieces of at most
   * `LIMITS.output.maxLineLength` characters, each a line of its own).
   */
  write(stream: OutputStream, text: string, level?: OutputLevel): void;
  /** No line follows: the execution's log is closed once what it wrote is shipped. */
  end(): void;
}

/** What takes the output of the worker's executions (the shipper, with an orchestrator). */
export interface ModuleOutput {
  /** The writer of `executionId`'s lines, from its first to its last. */
  open(executionId: string): OutputWriter;
}

/** A writer that keeps nothing (no orchestrator to ship to). */
export const DISCARD_OUTPUT: OutputWriter = { write: () => undefined, end: () => undefined };

/** `text` as lines for the wire: split at line breaks (`\n`, `\r\n`), each cut into pieces of at most `maxLength`. */
export function splitLines(text: string, maxLength: number = LIMITS.output.maxLineLength): string[] {
  const lines: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.length <= maxLength) {
      lines.push(line);
      continue;
    }
    for (let start = 0; start < line.length; start += maxLength) lines.push(line.slice(start, start + maxLength));
  }
  return lines;
}

/**
 * Splits a stream's chunks into lines (a line break ends one; the last, unfinished one is given
 * by {@link LineSplitter.flush}); a line longer than `maxLength` is given in pieces as it comes,
 * so no partial line grows without bound.
 */
export class LineSplitter {
  private partial = '';

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLength: number = LIMITS.output.maxLineLength,
  ) {}

  push(chunk: string): void {
    this.partial += chunk;
    let newline: number;
    while ((newline = this.partial.indexOf('\n')) >= 0) {
      const line = this.partial.slice(0, newline);
      this.partial = this.partial.slice(newline + 1);
      for (const piece of splitLines(line.endsWith('\r') ? line.slice(0, -1) : line, this.maxLength))
        this.onLine(piece);
    }
    while (this.partial.length > this.maxLength) {
      this.onLine(this.partial.slice(0, this.maxLength));
      this.partial = this.partial.slice(this.maxLength);
    }
  }

  flush(): void {
    if (this.partial === '') return;
    const line = this.partial;
    this.partial = '';
    this.onLine(line);
  }
}
