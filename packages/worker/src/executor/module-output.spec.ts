import { LIMITS } from '@mpd/contract/limits';
import { describe, expect, it } from 'vitest';
import { ByteLineSplitter, LineSplitter } from './module-output.js';

const MAX: number = LIMITS.output.maxLineLength;
const SECRET = 'S3cr3tValue_abc';

/** The pieces a ByteLineSplitter gives for one unfinished line pushed in `chunks`, then flushed. */
function bytePieces(chunks: readonly Buffer[], secrets: readonly string[], maxBytes = MAX): Buffer[] {
  const blocks: Buffer[] = [];
  const splitter = new ByteLineSplitter(
    (block) => blocks.push(block),
    maxBytes,
    secrets.map((value) => Buffer.from(value)),
  );
  for (const chunk of chunks) splitter.push(chunk);
  splitter.flush();
  return blocks.map((block) => {
    expect(block.at(-1)).toBe(0x0a);
    expect(block.indexOf(0x0a)).toBe(block.length - 1); // one piece per block: the line has no \n
    return block.subarray(0, -1);
  });
}

/** The pieces a LineSplitter gives for one unfinished line pushed in `chunks`, then flushed. */
function stringPieces(chunks: readonly string[], secrets: readonly string[], maxLength = MAX): string[] {
  const pieces: string[] = [];
  const splitter = new LineSplitter((lines) => pieces.push(lines), maxLength, secrets);
  for (const chunk of chunks) splitter.push(chunk);
  splitter.flush();
  return pieces;
}

/** Where each piece after the first begins in the line. */
function cutsOf(pieces: readonly { length: number }[]): number[] {
  const cuts: number[] = [];
  let at = 0;
  for (const piece of pieces.slice(0, -1)) cuts.push((at += piece.length));
  return cuts;
}

/** Every occurrence of `secret` in `line`, as [start, end). */
function occurrences<T extends string | Buffer>(line: T, secret: T): Array<[number, number]> {
  const found: Array<[number, number]> = [];
  for (let at = line.indexOf(secret as never); at >= 0; at = line.indexOf(secret as never, at + 1))
    found.push([at, at + secret.length]);
  return found;
}

/** The pieces make the line again; no cut falls inside an occurrence of `secret`; each piece within `max`. */
function expectCutSafely<T extends string | Buffer>(line: T, pieces: readonly T[], secret: T, max = MAX): void {
  if (typeof line === 'string') expect(pieces.join('')).toBe(line);
  else expect(Buffer.concat(pieces as unknown as Buffer[]).equals(line)).toBe(true);
  expect(pieces.length).toBeGreaterThan(1);
  const found = occurrences(line, secret);
  expect(found.length).toBeGreaterThan(0);
  for (const cut of cutsOf(pieces))
    for (const [start, end] of found)
      expect(cut <= start || cut >= end, `cut ${cut} inside [${start}, ${end})`).toBe(true);
  for (const piece of pieces) expect(piece.length).toBeLessThanOrEqual(max);
}

/** `text` in chunks of `size`. */
function chunked<T extends string | Buffer>(text: T, size: number): T[] {
  const chunks: T[] = [];
  for (let at = 0; at < text.length; at += size)
    chunks.push((typeof text === 'string' ? text.slice(at, at + size) : (text as Buffer).subarray(at, at + size)) as T);
  return chunks;
}

describe('ByteLineSplitter: an over-long line is never cut inside a secret value (the worker masks each piece alone)', () => {
  it('a secret across the cut at maxLineLength, in one chunk and across chunks', () => {
    const line = Buffer.from('y'.repeat(16_380) + SECRET + 'y'.repeat(60_000));
    const secret = Buffer.from(SECRET);
    expectCutSafely(line, bytePieces([line], [SECRET]), secret);
    expectCutSafely(line, bytePieces(chunked(line, 1_000), [SECRET]), secret);
    // The secret's first bytes end one chunk, the rest comes with the next.
    expectCutSafely(line, bytePieces([line.subarray(0, 16_384), line.subarray(16_384)], [SECRET]), secret);
    expectCutSafely(line, bytePieces(chunked(line, 7), [SECRET]), secret);
  });

  it('a secret at every offset around the cut, amid multi-byte text, with a multi-byte secret too', () => {
    for (const value of [SECRET, 'Sé€rét_välue€']) {
      const secret = Buffer.from(value);
      for (let offset = 16_370; offset <= 16_390; offset++) {
        const line = Buffer.concat([
          Buffer.from('y'.repeat(offset - 5)),
          Buffer.from('é€'), // 5 bytes
          secret,
          Buffer.from('€ü'.repeat(8_000)),
        ]);
        const pieces = bytePieces([line], [value]);
        expectCutSafely(line, pieces, secret);
        expectCutSafely(line, bytePieces(chunked(line, 4_096), [value]), secret);
        // Every piece is whole UTF-8 characters.
        for (const piece of pieces) expect(Buffer.from(piece.toString()).equals(piece)).toBe(true);
      }
    }
  });

  it('a secret longer than the piece is given whole, in a piece longer than the bound by at most its length', () => {
    const value = 'LONG_SECRET_VALUE';
    const line = Buffer.from(`ab${value}cdefghijklmnopqrstuvwxyz`);
    const pieces = bytePieces(chunked(line, 3), [value], 8);
    expectCutSafely(line, pieces, Buffer.from(value), 8 + value.length);
    expect(pieces.map(String)).toContain(value);
  });

  it('without secrets, cuts at the bound as before', () => {
    const line = Buffer.from('y'.repeat(16_380) + SECRET + 'y'.repeat(60_000));
    expect(cutsOf(bytePieces([line], []))).toEqual([16_384, 32_768, 49_152, 65_536]);
  });
});

describe('LineSplitter (console.*): an over-long line is never cut inside a secret value', () => {
  it('a secret across the cut, at every offset around it, in one chunk and across chunks, amid multi-byte text', () => {
    for (const value of [SECRET, 'Sé€rét_välue€']) {
      for (let offset = 16_370; offset <= 16_390; offset++) {
        const line = 'y'.repeat(offset - 2) + 'é€' + value + '€ü'.repeat(20_000);
        expectCutSafely(line, stringPieces([line], [value]), value);
        expectCutSafely(line, stringPieces(chunked(line, 1_000), [value]), value);
        expectCutSafely(line, stringPieces([line.slice(0, 16_384), line.slice(16_384)], [value]), value);
      }
    }
  });
});
