/**
 * Files a module host hands the worker to upload (a `done`'s `resultFile`, an artifact call's
 * `put` and `putPacking`): a host's files, which a module's code may change at any time. Each is
 * opened once, not following a symbolic link and not waiting for a FIFO's writer, and checked on
 * that handle (a regular file of one link); nothing is opened by its path again, so a link or
 * FIFO swapped in after the check is never read (round R's review s2, round T's T1). A result
 * file and a `put`'s file are uploaded from a copy of the worker's own of exactly the bytes
 * checked (a file grown after its check is refused); a `putPacking`'s archive, which the host is
 * still writing, is read through the handle as it grows (`WorkerBlobs.putPacking`).
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest } from '../artifacts/module-artifacts.js';

/** Bytes read at a time when copying (as the artifact client reads a file: 1 MiB). */
const COPY_CHUNK_BYTES = 1024 * 1024;

/** A host's file opened once: its handle and its size (bytes) when checked. */
export interface OpenedHostFile {
  handle: FileHandle;
  size: number;
}

/**
 * Opens the host's file `path` once (`O_RDONLY | O_NOFOLLOW | O_NONBLOCK`: a symbolic link is
 * refused, a FIFO opens at once) and checks it on the handle.
 * @returns the handle and size; or `'not-own-file'` when it is a symbolic link, not a regular
 *   file (a FIFO, a directory, a device…) or a file of more than one link (its handle closed)
 * @throws the open's or fstat's error otherwise (`ENOENT`…)
 */
export async function openHostFile(path: string): Promise<OpenedHostFile | 'not-own-file'> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') return 'not-own-file';
    throw error;
  }
  try {
    const found = await handle.stat();
    if (!found.isFile() || found.nlink !== 1) {
      await handle.close();
      return 'not-own-file';
    }
    return { handle, size: found.size };
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}

/**
 * What a host's file that {@link openHostFile} refused is told as (the execution's failure names
 * it: a `done`'s result file, an artifact call's upload): a symbolic link, a FIFO, a directory or
 * a device, or a file of more than one link. `path` is named as the host gave it.
 */
export function notOwnFileMessage(path: string): string {
  return `${path} is not a regular file of its own (a symbolic link, a FIFO, a directory, or a file of more than one link): not uploaded`;
}

/**
 * Copies exactly `size` bytes of `handle` (from its start) to a new file of the worker's in
 * `dir` (`<prefix>.<random>.<extension>`, created `wx`, mode 0600), hashing them as they go.
 * @param extension the copy's file extension. @default 'json'
 * @returns the copy's path and its digest (what to hand `transport.put`)
 * @throws an Error when the file holds fewer or more bytes than `size` (changed after its
 *   check), or the copy's write error; the copy removed
 */
export async function copyHostFile(
  handle: FileHandle,
  size: number,
  dir: string,
  prefix: string,
  extension = 'json',
): Promise<{ path: string; digest: Digest }> {
  const path = join(dir, `${prefix}.${randomBytes(6).toString('hex')}.${extension}`);
  const hash = createHash('sha256');
  const out = await open(path, 'wx', 0o600);
  try {
    const buffer = Buffer.allocUnsafe(Math.min(COPY_CHUNK_BYTES, Math.max(size, 1)));
    let position = 0;
    while (position < size) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, size - position), position);
      if (bytesRead === 0) throw new Error(`the file was cut to ${position} bytes after it was checked (${size})`);
      hash.update(buffer.subarray(0, bytesRead));
      await out.write(buffer, 0, bytesRead);
      position += bytesRead;
    }
    const { bytesRead: more } = await handle.read(Buffer.alloc(1), 0, 1, size);
    if (more > 0) throw new Error(`the file grew after it was checked (${size} bytes)`);
    await out.close();
    return { path, digest: { sha256: hash.digest('hex'), size } };
  } catch (error) {
    await out.close().catch(() => undefined);
    await rm(path, { force: true });
    throw error;
  }
}
