/** SHA-256 on a worker thread for large streams (issue 13, benchmark 6): the same digest as `createHash`, on the spot for small ones. */
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { DigestingStream } from './digesting-stream.js';
import { DEFAULT_THREAD_FROM_BYTES, ThreadHash } from './thread-hash.js';

/** `bytes` bytes in chunks of changing sizes (small ones too, as tar's 512-byte headers), seeded. */
function chunks(bytes: number): Buffer[] {
  const out: Buffer[] = [];
  let seed = 7;
  for (let left = bytes; left > 0;) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const size = Math.min(left, [512, 65_536, 1_048_576, 3_000][seed % 4]!);
    out.push(Buffer.alloc(size, seed % 251));
    left -= size;
  }
  return out;
}

const sha256Of = (parts: Buffer[]) => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
};

describe('ThreadHash', () => {
  it('hashes a stream past the threshold on a thread, waiting when asked, to the digest createHash gives', async () => {
    const parts = chunks(DEFAULT_THREAD_FROM_BYTES + 20 * 1024 * 1024);
    const hash = new ThreadHash();
    for (const part of parts) await hash.update(part);
    expect(hash.threaded).toBe(true);
    expect(await hash.digest()).toBe(sha256Of(parts));
  });

  it('hashes a small stream on the spot, without a thread', async () => {
    const parts = chunks(DEFAULT_THREAD_FROM_BYTES - 1);
    const hash = new ThreadHash();
    for (const part of parts) expect(hash.update(part)).toBeUndefined();
    expect(hash.threaded).toBe(false);
    expect(await hash.digest()).toBe(sha256Of(parts));
  });

  it('DigestingStream passes every byte on and digests them on a thread (threshold 0); a failed pipeline ends its thread', async () => {
    const parts = chunks(5 * 1024 * 1024);
    const digesting = new DigestingStream(0);
    const received: Buffer[] = [];
    await pipeline(
      Readable.from(parts),
      digesting,
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          received.push(chunk);
          callback();
        },
      }),
    );
    expect(Buffer.concat(received).equals(Buffer.concat(parts))).toBe(true);
    expect(await digesting.digest()).toEqual({ sha256: sha256Of(parts), size: 5 * 1024 * 1024 });

    const failing = new DigestingStream(0);
    let written = 0;
    const broken = pipeline(
      Readable.from(chunks(8 * 1024 * 1024)),
      failing,
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          written += chunk.length;
          callback(written > 3 * 1024 * 1024 ? new Error('disk full') : null);
        },
      }),
    );
    await expect(broken).rejects.toThrow('disk full');
    await expect(failing.digest()).rejects.toThrow('the hash was closed');
  });
});
