/** The file the artifact benchmark moves. */
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { finished } from 'node:stream/promises';
import { seededRandom } from './stats.js';

/** The artifact benchmark's file name, in the driver's source directory (MPD_BENCH_ARTIFACT_SOURCE). */
export const ARTIFACT_FILE = 'blob.bin';

/** One MiB of seeded random bytes, repeated: incompressible for gzip (its window is 32 KiB), as most build outputs are not. */
function block(): Buffer {
  const random = seededRandom(13);
  const buffer = Buffer.alloc(1024 * 1024);
  for (let index = 0; index < buffer.length; index += 4) buffer.writeUInt32LE(Math.floor(random() * 2 ** 32), index);
  return buffer;
}

/** Writes `bytes` bytes of {@link block}s to `path` (made with its directory). */
export async function writeBenchFile(path: string, bytes: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const data = block();
  const out = createWriteStream(path);
  for (let left = bytes; left > 0; left -= data.length) {
    if (!out.write(left >= data.length ? data : data.subarray(0, left))) {
      await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    }
  }
  out.end();
  await finished(out);
}
