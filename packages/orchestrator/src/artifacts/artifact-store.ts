/**
 * What the artifact routes need of a store, whichever keeps the bytes: the orchestrator's own
 * directory ({@link BlobStore}, the default) or an S3-compatible bucket ({@link S3BlobStore},
 * `--artifact-store s3://bucket/prefix`). The routes stream through either; only the bucket can
 * also hand out a presigned URL, so that workers move the bytes to and from it directly.
 */
import type { Readable } from 'node:stream';
import type { BlobTransfer } from '@mpd/contract';
import type { ResolvedOrchestratorOptions } from '../orchestrator-options.js';
import { type BlobReader, BlobStore } from './blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';

/** Which way a blob moves (`POST /api/artifacts/blobs/{sha256}/transfers`' `direction`). */
export type TransferDirection = 'upload' | 'download';

/**
 * The store's backend failed a call (the bucket refused the orchestrator's credentials, could not
 * be reached, …): not the caller's fault; the routes answer 502 `ArtifactStoreUnavailable`.
 */
export class ArtifactStoreUnavailableError extends Error {
  override readonly name = 'ArtifactStoreUnavailableError';
}

export interface ArtifactStore {
  /** `local` (a directory) or `s3` (a bucket), for logs and messages. */
  readonly kind: 'local' | 's3';
  /** The size in bytes of blob `sha256`, or undefined when the store does not have it (`HEAD`). */
  sizeOf(sha256: string): Promise<number | undefined>;
  /**
   * Stores `size` bytes of `body` as blob `sha256`, kept only when they hash to it.
   * @throws BlobWriteError `HashMismatch` or `SizeMismatch`; the body's own error when it fails
   */
  put(sha256: string, size: number, body: Readable): Promise<void>;
  /**
   * Stores `body` as the blob its bytes hash to (`POST /api/artifacts/blobs`), at most `maxBytes`
   * of it: see {@link BlobStore.putUnnamed}. Absent from a store that must know a blob's hash
   * before its bytes arrive (the bucket: a presigned upload signs it); the route then answers 409
   * `ArtifactHashRequired`.
   */
  putUnnamed?(body: Readable, maxBytes: number): Promise<{ sha256: string; size: number; stored: boolean }>;
  /** Blob `sha256` for reading, verified as it is read; undefined when the store does not have it. */
  open(sha256: string): Promise<BlobReader | undefined>;
  /**
   * How a client moves blob `sha256` (`size` bytes, for an upload): `{ store: 'orchestrator' }`
   * to go through the blob routes, or a presigned URL. A download answers undefined when the
   * store does not have the blob (the route's 404).
   */
  transfer(sha256: string, direction: TransferDirection, size?: number): Promise<BlobTransfer | undefined>;
  /**
   * Checks, before the orchestrator takes requests, that the store can be used. The bucket: a
   * `HEAD` of an object that does not exist must answer 404 (the credentials, bucket, region,
   * endpoint and permissions are right: without `s3:ListBucket` S3 answers 403 for a missing
   * object, and every new blob's upload would fail); the directory store: nothing (it is made on
   * the first upload).
   * @throws ArtifactStoreUnavailableError naming what failed
   */
  check(): Promise<void>;
  /**
   * Removes what the store's retention lets go (the directory store: blobs unused for longer
   * than `--artifact-retention`; a bucket: nothing, its lifecycle rule does). Called when the
   * orchestrator starts and, through {@link endRun}, when a run ends.
   * @returns how many blobs were removed
   */
  sweep(): Promise<number>;
  /**
   * A run ended: the blobs it wrote or read are kept for the retention from now, then the store
   * is swept.
   * @returns how many blobs were removed
   */
  endRun(): Promise<number>;
}

/**
 * The store `options` name: the bucket of `artifactStore` when given, else the directory
 * `artifactsDir` with the retention `artifactRetentionMs`.
 */
export function artifactStoreOf(
  options: Pick<
    ResolvedOrchestratorOptions,
    | 'artifactsDir'
    | 'artifactRetentionMs'
    | 'artifactStore'
    | 'artifactStoreEndpoint'
    | 'artifactStoreRegion'
    | 'artifactStorePathStyle'
    | 'artifactStoreCredentials'
    | 'artifactUrlExpiryMs'
  >,
): ArtifactStore {
  if (options.artifactStore === undefined) {
    return new BlobStore(options.artifactsDir, { retentionMs: options.artifactRetentionMs });
  }
  return new S3BlobStore({
    url: options.artifactStore,
    endpoint: options.artifactStoreEndpoint,
    region: options.artifactStoreRegion ?? process.env.AWS_REGION ?? 'us-east-1',
    pathStyle: options.artifactStorePathStyle,
    urlExpiryMs: options.artifactUrlExpiryMs,
    credentials: options.artifactStoreCredentials,
  });
}
