/**
 * The worker's cache of artifact blobs by SHA-256: a directory of files named by their hash,
 * bounded in bytes, least recently used evicted first. A blob asked for while it is being
 * downloaded is downloaded once: every asker waits for the same download.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { LIMITS } from '@mpd/contract';

/** Downloads blob `sha256` to `path` (temp + rename: `path` is the whole verified blob or nothing). */
export type BlobDownloader = (sha256: string, path: string) => Promise<unknown>;

/** Options of {@link BlobCache}. */
export interface BlobCacheOptions {
  /** The cache's directory (made at first use). */
  dir: string;
  /** The most bytes of blobs kept; past it the least recently used are removed. */
  maxBytes: number;
  /** How a missing blob is fetched (`ArtifactClient.getToFile`). */
  download: BlobDownloader;
}

/** A blob taken out of the cache for reading: a hard link of its own, so eviction cannot remove it meanwhile. */
export interface CheckedOutBlob {
  /** A file only this caller uses; it survives the blob's eviction. */
  path: string;
  size: number;
  /** Removes {@link CheckedOutBlob.path}. */
  release(): Promise<void>;
}

/** Where checked-out links go, inside the cache's directory (same filesystem, so links work). */
const CHECKOUTS = '.checkouts';
/** Where modules pack archives before upload, inside the cache's directory (so the cache can link them); left alone by the cache. */
export const SCRATCH_DIR = '.scratch';

export class BlobCache {
  /** Blobs held, by hash: size in bytes; a Map keeps insertion order, so re-inserting marks as most recent. */
  private readonly entries = new Map<string, number>();
  private readonly downloads = new Map<string, Promise<void>>();
  private totalBytes = 0;
  private ready: Promise<void> | undefined;

  constructor(private readonly options: BlobCacheOptions) {}

  /** Bytes of blobs held now. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** Whether the cache holds blob `sha256`. */
  has(sha256: string): boolean {
    return this.entries.has(sha256);
  }

  /** Reads what a previous run left (blobs by name; partial downloads and checkouts removed). */
  private init(): Promise<void> {
    return (this.ready ??= (async () => {
      await mkdir(join(this.options.dir, CHECKOUTS), { recursive: true });
      await rm(join(this.options.dir, CHECKOUTS), { recursive: true, force: true });
      await mkdir(join(this.options.dir, CHECKOUTS), { recursive: true });
      for (const name of await readdir(this.options.dir)) {
        const path = join(this.options.dir, name);
        if (LIMITS.artifact.sha256.pattern.test(name)) {
          const found = await stat(path);
          if (found.isFile()) this.remember(name, found.size);
        } else if (name !== CHECKOUTS && name !== SCRATCH_DIR) {
          await rm(path, { force: true, recursive: true });
        }
      }
      await this.evict();
    })());
  }

  private remember(sha256: string, size: number): void {
    const previous = this.entries.get(sha256);
    if (previous !== undefined) {
      this.entries.delete(sha256);
      this.totalBytes -= previous;
    }
    this.entries.set(sha256, size);
    this.totalBytes += size;
  }

  /** Removes least recently used blobs until the total is within `maxBytes` (`keep` stays whatever its size). */
  private async evict(keep?: string): Promise<void> {
    for (const [sha256, size] of this.entries) {
      if (this.totalBytes <= this.options.maxBytes) return;
      if (sha256 === keep) continue;
      this.entries.delete(sha256);
      this.totalBytes -= size;
      await unlink(join(this.options.dir, sha256)).catch(() => undefined);
    }
  }

  /**
   * Blob `sha256`, downloaded unless the cache has it (once, however many ask at the same
   * time), checked out as a link of the caller's own. Release it when done.
   * @throws what the download throws (the blob missing from the store, damaged, a lost connection)
   */
  async checkOut(sha256: string): Promise<CheckedOutBlob> {
    if (!LIMITS.artifact.sha256.pattern.test(sha256)) throw new TypeError(`not a SHA-256: ${JSON.stringify(sha256)}`);
    await this.init();
    for (;;) {
      const size = this.entries.get(sha256);
      if (size !== undefined) {
        this.remember(sha256, size);
        const path = join(this.options.dir, CHECKOUTS, `${sha256}.${randomBytes(6).toString('hex')}`);
        try {
          await link(join(this.options.dir, sha256), path);
        } catch (error) {
          // Evicted between the two lines by another caller: fetch it again.
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
            this.forget(sha256);
            continue;
          }
          throw error;
        }
        return { path, size, release: () => unlink(path).catch(() => undefined) };
      }
      let download = this.downloads.get(sha256);
      if (download === undefined) {
        download = this.fetch(sha256).finally(() => this.downloads.delete(sha256));
        this.downloads.set(sha256, download);
      }
      await download;
    }
  }

  private forget(sha256: string): void {
    const size = this.entries.get(sha256);
    if (size === undefined) return;
    this.entries.delete(sha256);
    this.totalBytes -= size;
  }

  private async fetch(sha256: string): Promise<void> {
    const path = join(this.options.dir, sha256);
    await this.options.download(sha256, path);
    this.remember(sha256, (await stat(path)).size);
    await this.evict(sha256);
  }

  /**
   * Adds the file at `path` (whose hash the caller computed) as blob `sha256`: linked when it is on
   * the cache's filesystem, copied otherwise. A module that uploads an artifact leaves it here,
   * so a consumer on the same worker does not download it.
   */
  async add(sha256: string, path: string): Promise<void> {
    if (!LIMITS.artifact.sha256.pattern.test(sha256)) throw new TypeError(`not a SHA-256: ${JSON.stringify(sha256)}`);
    await this.init();
    if (this.entries.has(sha256)) return;
    const target = join(this.options.dir, sha256);
    const temporary = join(this.options.dir, CHECKOUTS, `add-${randomBytes(6).toString('hex')}`);
    await link(path, temporary).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EXDEV') throw error;
      await copyFile(path, temporary);
    });
    await rename(temporary, target);
    this.remember(sha256, (await stat(target)).size);
    await this.evict(sha256);
  }
}
