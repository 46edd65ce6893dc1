/**
 * Digests the worker's own hashing made of a file it wrote itself, hashing the very bytes it
 * wrote (round V, V2): the only digests an upload or the cache takes without hashing the file
 * again. An upload by hash sends no bytes when the store holds that blob already, and the cache
 * keeps the file under the digest's name: a digest taken on trust from anyone else (a module
 * host's message) could name a blob the store has over other bytes, and the cache would then
 * hand those bytes to every consumer of that blob on the worker.
 *
 * Recorded by object identity (a `WeakMap`), never by value: a digest parsed from a message, or
 * copied into another object, is not one; each is frozen, so no one changes it after.
 */
import type { Digest } from './module-artifacts.js';

/** Each own digest: the path of the file it is the hash of. */
const ownFiles = new WeakMap<Digest, string>();

/**
 * `digest` as the worker's own hash of the file at `path` (a new frozen object): call it only
 * where the worker wrote `path` itself (`wx`, where it chose) and hashed exactly the bytes it
 * wrote (the packer, a copy of a host's file, a result's text).
 */
export function ownDigest(path: string, digest: Digest): Digest {
  const own = Object.freeze({ sha256: digest.sha256, size: digest.size });
  ownFiles.set(own, path);
  return own;
}

/** Whether `digest` is the very object {@link ownDigest} made for `path`. */
export function isOwnDigestOf(digest: Digest, path: string): boolean {
  return ownFiles.get(digest) === path;
}
