/**
 * The artifact store in an S3-compatible bucket (`--artifact-store s3://bucket/prefix`): blob
 * `sha256` is the object `<prefix>/<sha256>`. Workers move bytes to and from the bucket directly,
 * with presigned URLs the orchestrator hands out (`POST /api/artifacts/blobs/{sha256}/transfers`);
 * the blob routes still work, the orchestrator streaming to and from the bucket, so the admin and
 * older clients are not broken. mpd never lists or deletes in the bucket: retention is the
 * bucket's lifecycle rule.
 *
 * The SDK is loaded on first use, so an orchestrator with the directory store never loads it.
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { GetObjectCommandOutput, PutObjectCommandInput, S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { BlobDamagedError, VerifyingStream } from '@mpd/client';
import { type BlobTransfer, LIMITS } from '@mpd/contract';
import { parseS3Url } from './s3-url.js';
import { type ArtifactStore, ArtifactStoreUnavailableError, type TransferDirection } from './artifact-store.js';
import { type BlobReader, BlobWriteError } from './blob-store.js';

/** Where and how to reach the bucket (the orchestrator's `artifactStore*` options). */
export interface S3BlobStoreOptions {
  /** `s3://bucket` or `s3://bucket/prefix` (`--artifact-store`). */
  url: string;
  /** An S3-compatible server's URL (MinIO, Ceph, R2, …); absent: AWS S3 of `region`. */
  endpoint?: string;
  /** The bucket's region (`--artifact-store-region`). */
  region: string;
  /** Path-style URLs (`http://host/bucket/key`), as MinIO-style servers want (`--artifact-store-path-style`). */
  pathStyle: boolean;
  /** How long a presigned URL is accepted, in ms (checked by the bucket when a request starts). */
  urlExpiryMs: number;
  /**
   * Credentials for embedding and tests; absent (always, from the CLI): the AWS SDK's default
   * chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, web identity, instance roles).
   */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** The clock presigned URLs are signed at, in ms since the epoch (tests sign expired ones). @default Date.now */
  now?: () => number;
}

/** How long a connection to the bucket may take to open, ms. */
const S3_CONNECT_TIMEOUT_MS = 10_000;
/** How long a request to the bucket may stay without a byte moving, ms (the orchestrator's own idle timeout). */
const S3_IDLE_TIMEOUT_MS = 60_000;

/** The SDK, loaded once. */
interface Sdk {
  s3: typeof import('@aws-sdk/client-s3');
  presign: (typeof import('@aws-sdk/s3-request-presigner'))['getSignedUrl'];
  client: S3Client;
}

/** An S3 answer of 404 (`NotFound` to a HEAD, `NoSuchKey` to a GET). */
const isMissing = (error: unknown): boolean =>
  (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404;

/** An SDK failure as the routes report it: the bucket's error code and message, or the connection's. */
function unavailable(error: unknown, what: string): ArtifactStoreUnavailableError {
  const { name, message, $metadata } = error as Error & { $metadata?: { httpStatusCode?: number } };
  const status = $metadata?.httpStatusCode === undefined ? '' : ` ${$metadata.httpStatusCode}`;
  return new ArtifactStoreUnavailableError(`the bucket failed ${what}:${status} ${name}: ${message}`, { cause: error });
}

/** A hex SHA-256 as S3's `x-amz-checksum-sha256` wants it: base64 of the 32 bytes. */
const checksumOf = (sha256: string): string => Buffer.from(sha256, 'hex').toString('base64');

export class S3BlobStore implements ArtifactStore {
  readonly kind = 's3';
  readonly bucket: string;
  readonly prefix: string;
  private sdk: Promise<Sdk> | undefined;
  private readonly now: () => number;

  /** @throws TypeError when `options.url` is not an `s3://` URL of a valid bucket */
  constructor(private readonly options: S3BlobStoreOptions) {
    ({ bucket: this.bucket, prefix: this.prefix } = parseS3Url(options.url));
    this.now = options.now ?? Date.now;
  }

  /** Blob `sha256`'s object key; the name is checked (64 lowercase hex). */
  keyOf(sha256: string): string {
    if (!LIMITS.artifact.sha256.pattern.test(sha256)) throw new TypeError(`not a SHA-256: ${JSON.stringify(sha256)}`);
    return this.prefix === '' ? sha256 : `${this.prefix}/${sha256}`;
  }

  private load(): Promise<Sdk> {
    this.sdk ??= (async () => {
      const [s3, presigner] = await Promise.all([
        import('@aws-sdk/client-s3'),
        import('@aws-sdk/s3-request-presigner'),
      ]);
      const config: S3ClientConfig = {
        region: this.options.region,
        forcePathStyle: this.options.pathStyle,
        // Newer SDKs otherwise add CRC32 checksums sent as aws-chunked trailers, which many
        // S3-compatible servers refuse; a PUT carries its SHA-256 checksum (the blob's name) instead.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        // The SDK's own defaults wait forever for a connection and an answer: a black-holed
        // endpoint would hang the start's check and every route. Idle time, not a whole request's:
        // a large blob streams as long as its bytes keep moving.
        requestHandler: { connectionTimeout: S3_CONNECT_TIMEOUT_MS, requestTimeout: S3_IDLE_TIMEOUT_MS },
        ...(this.options.endpoint ? { endpoint: this.options.endpoint } : {}),
        ...(this.options.credentials ? { credentials: this.options.credentials } : {}),
      };
      return { s3, presign: presigner.getSignedUrl, client: new s3.S3Client(config) };
    })();
    return this.sdk;
  }

  async sizeOf(sha256: string): Promise<number | undefined> {
    const { s3, client } = await this.load();
    try {
      const head = await client.send(new s3.HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(sha256) }));
      return head.ContentLength;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw unavailable(error, `HEAD ${this.keyOf(sha256)}`);
    }
  }

  /**
   * Streams `body` to the bucket through a {@link VerifyingStream}: its last chunk is held back
   * until the bytes hash to `sha256`, so a wrong body never reaches the bucket whole (the request
   * is cut short of its `Content-Length`, and the bucket keeps nothing). The object's
   * `x-amz-checksum-sha256` lets the bucket check it too.
   */
  async put(sha256: string, size: number, body: Readable): Promise<void> {
    const { s3, client } = await this.load();
    const verified = body.pipe(new VerifyingStream(sha256, size));
    body.on('error', (error) => verified.destroy(error));
    let failure: unknown;
    // The SDK does not end its request when the body fails: the bucket would wait for the
    // missing bytes. Aborting it closes the connection (and keeps it out of the pool).
    const abort = new AbortController();
    verified.on('error', (error) => {
      failure ??= error;
      abort.abort(error);
    });
    const input: PutObjectCommandInput = {
      Bucket: this.bucket,
      Key: this.keyOf(sha256),
      Body: verified,
      ContentLength: size,
      ContentType: 'application/octet-stream',
      ChecksumSHA256: checksumOf(sha256),
    };
    try {
      await client.send(new s3.PutObjectCommand(input), { abortSignal: abort.signal });
    } catch (error) {
      const cause = failure ?? error;
      if (cause instanceof BlobDamagedError) {
        throw new BlobWriteError(
          'HashMismatch',
          `the body does not hash to ${sha256} (or is not ${size} bytes): not stored`,
        );
      }
      // The client went away (its body failed): its own error; else the bucket's.
      throw failure ?? unavailable(error, `PUT ${this.keyOf(sha256)}`);
    }
  }

  async open(sha256: string): Promise<BlobReader | undefined> {
    const { s3, client } = await this.load();
    let answer: GetObjectCommandOutput;
    try {
      answer = await client.send(new s3.GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(sha256) }));
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw unavailable(error, `GET ${this.keyOf(sha256)}`);
    }
    const size = answer.ContentLength ?? 0;
    const stream = (answer.Body as Readable).pipe(new VerifyingStream(sha256, size));
    stream.on('close', () => (answer.Body as Readable).destroy());
    return { size, stream };
  }

  async transfer(sha256: string, direction: TransferDirection, size?: number): Promise<BlobTransfer | undefined> {
    const held = await this.sizeOf(sha256);
    if (direction === 'download' && held === undefined) return undefined;
    if (direction === 'upload' && held !== undefined) return { store: 'url', exists: true, size: held };
    const { s3, client, presign } = await this.load();
    const signingDate = new Date(this.now());
    const expiresIn = Math.max(1, Math.round(this.options.urlExpiryMs / 1000));
    const expiresAt = new Date(signingDate.getTime() + expiresIn * 1000).toISOString();
    const key = this.keyOf(sha256);
    if (direction === 'download') {
      const url = await presign(client, new s3.GetObjectCommand({ Bucket: this.bucket, Key: key }), {
        expiresIn,
        signingDate,
      });
      return { store: 'url', exists: true, size: held!, method: 'GET', url, headers: {}, expiresAt };
    }
    // Signed: the size (the bucket refuses another Content-Length) and the SHA-256 (a bucket that
    // checks it refuses other bytes; every read is hashed anyway). Kept as headers, not moved
    // into the query, so the client sends them as they are signed.
    const headers = { 'content-length': String(size), 'x-amz-checksum-sha256': checksumOf(sha256) };
    const command = new s3.PutObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ContentLength: size,
      ChecksumSHA256: headers['x-amz-checksum-sha256'],
    });
    const url = await presign(client, command, {
      expiresIn,
      signingDate,
      signableHeaders: new Set(Object.keys(headers)),
      unhoistableHeaders: new Set(['x-amz-checksum-sha256']),
    });
    return { store: 'url', exists: false, size: size!, method: 'PUT', url, headers, expiresAt };
  }

  /**
   * A `HEAD` of an object that cannot exist (64 random hex digits under the prefix) must answer
   * 404: anything else (403 without `s3:ListBucket` or with a wrong key, a missing bucket, an
   * unreachable endpoint) is thrown, so the orchestrator refuses to start rather than failing
   * every upload later.
   */
  async check(): Promise<void> {
    const probe = randomBytes(32).toString('hex');
    if ((await this.sizeOf(probe)) !== undefined) {
      throw new ArtifactStoreUnavailableError(`the bucket answered a HEAD of ${this.keyOf(probe)} with an object`);
    }
  }

  /** Nothing: the bucket's lifecycle rule is its retention (mpd never lists or deletes in it). */
  async sweep(): Promise<number> {
    return 0;
  }

  async endRun(): Promise<number> {
    return 0;
  }
}
