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
import { constants, mkdirSync, realpathSync } from 'node:fs';
import { type FileHandle, open, readlink, realpath, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Digest } from '../artifacts/module-artifacts.js';
import { ownDigest } from '../artifacts/own-digest.js';

/** Bytes read at a time when copying (as the artifact client reads a file: 1 MiB). */
const COPY_CHUNK_BYTES = 1024 * 1024;

/** A host's file opened once: its handle and its size (bytes) when checked. */
export interface OpenedHostFile {
  handle: FileHandle;
  size: number;
}

/** Real paths of the scratch directories the worker gave its hosts, as first resolved (see {@link scratchRealPath}). */
const scratchRealPaths = new Map<string, string>();

/**
 * The real path (no symbolic link in it) of the scratch directory `dir` the worker gives its
 * module hosts, resolved once per process, the first time the worker gives it (a host's start,
 * before any module of it ran): the directory is made here by the worker (0700, with its
 * parents) when it is not there yet. A module may later replace the directory (or a parent) by
 * a symbolic link; the path resolved here stays what {@link openHostFile} checks a file's
 * handle against (round T, review U1).
 * @throws the file system's error (`ENOTDIR`, `EACCES`…)
 */
export function scratchRealPath(dir: string): string {
  let real = scratchRealPaths.get(dir);
  if (real === undefined) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    real = realpathSync(dir);
    scratchRealPaths.set(dir, real);
  }
  return real;
}

/**
 * Whether the file open as `handle` is `path`'s file in the scratch directory whose real path is
 * `realDir` (`join(realDir, basename(path))`): on Linux the handle's own path
 * (`/proc/self/fd/N`, what the kernel opened, whatever links the path went through); elsewhere
 * the real path of `path`'s directory now (a check by path: best effort).
 */
async function openedInDir(handle: FileHandle, path: string, realDir: string): Promise<boolean> {
  const expected = join(realDir, basename(path));
  if (process.platform !== 'linux') return join(await realpath(dirname(path)), basename(path)) === expected;
  return (await readlink(`/proc/self/fd/${handle.fd}`)) === expected;
}

/**
 * Opens the host's file `path` once (`O_RDONLY | O_NOFOLLOW | O_NONBLOCK`: a symbolic link is
 * refused, a FIFO opens at once) and checks it on the handle: a regular file of one link, opened
 * right in the scratch directory whose real path is `realDir` ({@link scratchRealPath}: `O_NOFOLLOW`
 * guards only the last component, and a module may have replaced its scratch directory by a
 * symbolic link to, say, `~/.ssh`; round T, review U1).
 * @returns the handle and size; or `'not-own-file'` when it is a symbolic link, not a regular
 *   file (a FIFO, a directory, a device…), a file of more than one link, or a file reached
 *   through a link elsewhere than `realDir` (its handle closed)
 * @throws the open's, fstat's or readlink's error otherwise (`ENOENT`…)
 */
export async function openHostFile(path: string, realDir: string): Promise<OpenedHostFile | 'not-own-file'> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') return 'not-own-file';
    throw error;
  }
  try {
    const found = await handle.stat();
    if (!found.isFile() || found.nlink !== 1 || !(await openedInDir(handle, path, realDir))) {
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
  return `${path} is not a regular file of its own (a symbolic link, a FIFO, a directory, a file of more than one link, or one reached through a link in place of its directory): not uploaded`;
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
    // The worker's own hash of the copy it wrote (own-digest.ts): its upload and the cache trust it.
    return { path, digest: ownDigest(path, { sha256: hash.digest('hex'), size }) };
  } catch (error) {
    await out.close().catch(() => undefined);
    await rm(path, { force: true });
    throw error;
  }
}
