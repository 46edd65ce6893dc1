/**
 * `ArtifactClient`: the orchestrator's artifact store (`orchestratorContract.artifacts`) from a
 * worker or a tool: blobs moved as streams, never held in memory, and checked against their
 * SHA-256 on the way down as well as by the store on the way up.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type BlobTransfer,
  blobTransferSchema,
  LIMITS,
  orchestratorContract,
  type PutBlobResponse,
  putBlobResponseSchema,
} from '@mpd/contract';
import type { Agent, Dispatcher } from 'undici';
import { bearerHeader, checkBaseUrl } from './clients.js';
import type { ClientOptions } from './client-options.js';
import { dispatcherOptions } from './fetcher.js';
import { loadUndici } from './undici.js';
import { downloadError, VerifyingStream } from './verifying-stream.js';

/** Options of {@link ArtifactClient}: the orchestrator's URL and the caller's token, as the other clients take them. */
export interface ArtifactClientOptions extends Pick<ClientOptions, 'baseUrl' | 'tls' | 'resolveHost' | 'headers'> {
  /**
   * A worker's credential or the admin token, or a function giving it at each call (a worker's
   * credential changes when it registers again).
   */
  token: string | (() => string | undefined);
  /**
   * How long a transfer may go without a byte moving (and a call wait for its answer's
   * headers), in ms: a blob of any size takes as long as it takes, a stalled one fails `Timeout`.
   * @default 60_000
   */
  idleTimeoutMs?: number;
}

export const DEFAULT_ARTIFACT_IDLE_TIMEOUT_MS = 60_000;

/** A store's answer other than success: its status and the contract's error code. */
export class ArtifactStoreError extends Error {
  override readonly name = 'ArtifactStoreError';
  constructor(
    /** The HTTP status (`404`: no such blob, `400` with `ArtifactHashMismatch`, `401`/`403`, `413`). */
    readonly status: number,
    /** The contract's error code when the answer had one (`ArtifactNotFound`, `ArtifactHashMismatch`, …). */
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** A presigned URL of the orchestrator's bucket, as {@link ArtifactClient.transfer} answers it. */
export type DirectTransfer = Extract<BlobTransfer, { store: 'url' }>;

/** A blob's SHA-256 (64 lowercase hex) and size in bytes. */
export interface BlobDigest {
  sha256: string;
  size: number;
}

/**
 * How many bytes a blob's file is read in at a time (hashing it, sending it): 1 MiB rather than
 * the 64 KiB default, a sixteenth of the reads (1 GiB from the page cache: 0.15 s against 0.5-0.8 s
 * on the CI machine, issue 13's benchmark 6), and little memory per transfer.
 */
const FILE_READ_BYTES = 1024 * 1024;

/** The SHA-256 and size of the file at `path`, read once as a stream. */
export async function digestFile(path: string): Promise<BlobDigest> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: FILE_READ_BYTES }) as AsyncIterable<Buffer>) {
    size += chunk.length;
    hash.update(chunk);
  }
  return { sha256: hash.digest('hex'), size };
}

function checkSha256(sha256: string): void {
  if (!LIMITS.artifact.sha256.pattern.test(sha256)) {
    throw new TypeError(`sha256 must be ${LIMITS.artifact.sha256.alphabet}, got ${JSON.stringify(sha256)}`);
  }
}

/**
 * A client of the orchestrator's artifact store.
 *
 * ```ts
 * const artifacts = new ArtifactClient({ baseUrl: 'http://127.0.0.1:8080', token: credential });
 * const { sha256 } = await artifacts.putFile('dist.tgz');
 * await artifacts.getToFile(sha256, '/tmp/dist.tgz');
 * ```
 */
export class ArtifactClient {
  /** The options of {@link dispatcher}, checked when the client is made (a bad `tls` throws then). */
  private readonly agentOptions: Agent.Options;
  /** The orchestrator's connections, made (with undici: undici.ts) at the first call. */
  private agent?: Agent;
  private closed = false;
  private async dispatcher(): Promise<Agent> {
    if (this.agent !== undefined) return this.agent;
    const { Agent } = await loadUndici();
    if (this.agent !== undefined) return this.agent; // another call made it meanwhile
    this.agent = new Agent(this.agentOptions);
    // Closed before any call: the call fails with undici's ClientClosedError, as it did.
    if (this.closed) void this.agent.close();
    return this.agent;
  }
  private readonly baseUrl: string;

  constructor(private readonly options: ArtifactClientOptions) {
    checkBaseUrl(options.baseUrl);
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    const idle = options.idleTimeoutMs ?? DEFAULT_ARTIFACT_IDLE_TIMEOUT_MS;
    // undici's header and body timeouts are idle timeouts: between bytes, not for the whole blob.
    this.agentOptions = {
      ...dispatcherOptions(idle, options.tls, options.resolveHost),
      headersTimeout: idle,
      bodyTimeout: idle,
    };
  }

  private url(sha256: string): string {
    checkSha256(sha256);
    // The contract's path, its parameter filled in (the hash is hex: nothing to encode).
    return `${this.baseUrl}${orchestratorContract.artifacts.getBlob.path.replace(':sha256', sha256)}`;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const token = typeof this.options.token === 'function' ? this.options.token() : this.options.token;
    return { ...this.options.headers, ...bearerHeader(token), ...extra };
  }

  private async call(
    method: Dispatcher.HttpMethod,
    sha256: string,
    extra?: { headers?: Record<string, string>; body?: Readable },
  ): Promise<Dispatcher.ResponseData> {
    const { request } = await loadUndici();
    return request(this.url(sha256), {
      method,
      headers: this.headers(extra?.headers),
      ...(extra?.body ? { body: extra.body } : {}),
      dispatcher: await this.dispatcher(),
    });
  }

  /** The size in bytes of blob `sha256` when the store has it, else undefined (`HEAD`). */
  async has(sha256: string): Promise<number | undefined> {
    const response = await this.call('HEAD', sha256);
    await response.body.dump();
    if (response.statusCode === 404) return undefined;
    if (response.statusCode !== 200) {
      // A HEAD answer has no body to read the error from (reading the dumped body again threw
      // inside undici, out of any caller's reach, and killed the worker).
      throw new ArtifactStoreError(response.statusCode, undefined, `HEAD blob ${sha256}: ${response.statusCode}`);
    }
    return Number(response.headers['content-length']);
  }

  /**
   * Uploads `size` bytes of `body` as blob `sha256` (`PUT`, streamed). The store keeps them only
   * when they hash to `sha256`.
   * @throws ArtifactStoreError (`ArtifactHashMismatch`, 401/403, 413 past the store's limit)
   */
  async put(sha256: string, size: number, body: Readable): Promise<PutBlobResponse> {
    const response = await this.call('PUT', sha256, {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body,
    });
    if (response.statusCode !== 200 && response.statusCode !== 201) {
      throw await refusal(response, `PUT blob ${sha256}`);
    }
    return (await response.body.json()) as PutBlobResponse;
  }

  /**
   * Uploads `body`, whose SHA-256 is not known yet, as it is read (`POST /api/artifacts/blobs`,
   * chunked): the orchestrator's store hashes it as it writes it and answers which blob it is
   * (`{ sha256, size, stored }`). For a producer that streams an archive as it packs it (issue
   * 13, round J), so the upload need not wait for a whole file and its hash.
   * @returns undefined, `body` untouched or destroyed, when the orchestrator does not take such an
   *   upload: its store is an S3-compatible bucket (409 `ArtifactHashRequired`: a presigned
   *   upload needs the hash first) or it predates the route (404 `RouteNotFound`); remembered,
   *   so later calls answer undefined without asking. Upload by hash then ({@link putFile}).
   * @throws ArtifactStoreError (413 `PayloadTooLarge` past `--max-artifact-size`, 401/403); the
   *   body's own error when it fails (the request is then cut short: nothing is stored)
   */
  async putStream(body: Readable): Promise<PutBlobResponse | undefined> {
    if (this.hashRequired) return undefined;
    const path = `${this.baseUrl}${orchestratorContract.artifacts.uploadBlob.path}`;
    let response: Dispatcher.ResponseData;
    try {
      const { request } = await loadUndici();
      response = await request(path, {
        method: 'POST',
        headers: this.headers({ 'content-type': 'application/octet-stream' }),
        body,
        dispatcher: await this.dispatcher(),
      });
    } catch (error) {
      // The body's own failure is the caller's to hear, not undici's wrapping of it.
      throw body.errored ?? error;
    }
    if (response.statusCode === 200 || response.statusCode === 201) {
      return putBlobResponseSchema.parse(await response.body.json());
    }
    const refused = await refusal(response, 'POST blob');
    if (
      refused.code === 'ArtifactHashRequired' ||
      (response.statusCode === 404 && refused.code !== 'ArtifactNotFound')
    ) {
      this.hashRequired = true;
      body.destroy();
      return undefined;
    }
    throw refused;
  }

  /** Set once the orchestrator refused an upload without a hash ({@link putStream}): it will not take one while it runs. */
  private hashRequired = false;

  /**
   * True once the orchestrator refused an upload without a hash (409 `ArtifactHashRequired`, or
   * a 404 from one that predates the route): {@link putStream} then answers undefined at once, so
   * a caller should not open a body for it at all and upload by hash ({@link putFile}).
   */
  get streamsRefused(): boolean {
    return this.hashRequired;
  }

  /** How long a transfer may go without a byte moving, in ms (`idleTimeoutMs`, default 60_000). */
  get idleTimeoutMs(): number {
    return this.options.idleTimeoutMs ?? DEFAULT_ARTIFACT_IDLE_TIMEOUT_MS;
  }

  /**
   * Uploads the file at `path` unless the store has it already (hashed first, then `HEAD`, then
   * a streamed `PUT`), and answers its digest.
   * @param digest the file's digest when the caller computed it as it wrote the file (e.g.
   *   `ctx.artifacts.upload`, hashing the archive as it packs it): the file is then read once,
   *   to send it, not twice; the store still checks the bytes it receives against `sha256`
   * @throws ArtifactStoreError as {@link ArtifactClient.put}; `ArtifactHashMismatch` when `digest` is not the file's
   */
  async putFile(path: string, digest?: BlobDigest): Promise<BlobDigest> {
    const known = digest ?? (await digestFile(path));
    const direct = await this.transfer(known.sha256, 'upload', known.size);
    if (direct !== undefined) {
      if (!direct.exists) await this.putToUrl(direct, createReadStream(path, { highWaterMark: FILE_READ_BYTES }));
      return known;
    }
    if ((await this.has(known.sha256)) === known.size) return known;
    await this.put(known.sha256, known.size, createReadStream(path, { highWaterMark: FILE_READ_BYTES }));
    return known;
  }

  /**
   * Downloads blob `sha256` to the file `path`: written to a temporary file beside it while its
   * bytes are hashed, renamed to `path` only when all of them arrived and hash to `sha256`
   * (removed otherwise), so `path` is the blob or nothing; answers its digest (`size`: its bytes).
   * @throws ArtifactStoreError (404 `ArtifactNotFound`, 401/403); `BlobDamagedError` when the bytes
   *   do not hash to `sha256`; the transfer's error when the connection is cut
   */
  async getToFile(sha256: string, path: string): Promise<BlobDigest> {
    // `get`'s stream: a cut transfer comes out of it as `BlobDownloadCutError`, damaged bytes as
    // `BlobDamagedError`, and an error of the file's own (a full disk) as itself.
    const { size, body } = await this.get(sha256);
    const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.partial`);
    // Up to 1 MiB queued for the file: the write stream then writes what the socket brought in
    // one `writev` rather than each 64 KiB chunk on its own (the consumer's worker used 3.9 s of
    // CPU per GiB downloaded against 4.4-4.9 s with the 16 KiB default, benchmark 6, issue 13).
    const file = createWriteStream(temporary, { flags: 'wx', highWaterMark: FILE_READ_BYTES });
    try {
      await pipeline(body, file);
      await rename(temporary, path);
    } catch (error) {
      body.destroy();
      // A transfer that failed at once can leave the file's open under way: the unlink waits for
      // it, or the open would make the file after it (round AD, the orchestrator's store).
      if (!file.closed) await new Promise<void>((resolve) => file.once('close', () => resolve()));
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
    // Its bytes were counted and hashed as they were written: `size` of them (no stat needed).
    return { sha256, size };
  }

  // --- S3-compatible store (issue 13, slice S) ---
  /**
   * How to move blob `sha256` (`POST /api/artifacts/blobs/{sha256}/transfers`): a presigned URL
   * of the orchestrator's bucket (`{ store: 'url', exists, size, method?, url?, headers?, expiresAt? }`;
   * no URL when an upload is not needed), or undefined when the orchestrator keeps blobs itself
   * or predates the route: then the blob routes are the way.
   * @param size the blob's size in bytes, required for an upload
   * @throws ArtifactStoreError (404 `ArtifactNotFound` for a download, 413 past the store's limit, 401/403)
   */
  async transfer(sha256: string, direction: 'upload' | 'download', size?: number): Promise<DirectTransfer | undefined> {
    if (this.blobRoutesOnly) return undefined;
    const { request } = await loadUndici();
    const response = await request(`${this.url(sha256)}/transfers`, {
      method: 'POST',
      headers: this.headers({ 'content-type': 'application/json' }),
      body: JSON.stringify({ direction, ...(size === undefined ? {} : { size }) }),
      dispatcher: await this.dispatcher(),
    });
    if (response.statusCode === 200) {
      const answer = blobTransferSchema.parse(await response.body.json());
      if (answer.store === 'url') return answer;
      this.blobRoutesOnly = true;
      return undefined;
    }
    const refused = await refusal(response, `POST blob ${sha256} transfers`);
    // An orchestrator without the route (404 `RouteNotFound`): it keeps blobs itself.
    if (response.statusCode === 404 && refused.code !== 'ArtifactNotFound') {
      this.blobRoutesOnly = true;
      return undefined;
    }
    throw refused;
  }

  /**
   * Set once the orchestrator answered that it keeps blobs itself (or has no transfers route):
   * its store does not change while it runs, so later blobs go to the blob routes without asking
   * (one request less per blob).
   */
  private blobRoutesOnly = false;

  /**
   * The bucket's own connections: no TLS settings, host resolution or headers of the
   * orchestrator's, and never its credential (a presigned URL carries its own authority).
   */
  private bucketDispatcher?: Agent;

  /** Sends a presigned request: exactly its signed headers, nothing of the orchestrator's. */
  private async viaUrl(direct: DirectTransfer, body?: Readable): Promise<Dispatcher.ResponseData> {
    if (direct.url === undefined || !/^https?:\/\//i.test(direct.url)) {
      throw new TypeError(`the orchestrator gave no http(s) URL to ${direct.method ?? 'move'} the blob`);
    }
    const idle = this.options.idleTimeoutMs ?? DEFAULT_ARTIFACT_IDLE_TIMEOUT_MS;
    const { Agent, request } = await loadUndici();
    this.bucketDispatcher ??= new Agent({ connectTimeout: idle, headersTimeout: idle, bodyTimeout: idle });
    return request(direct.url, {
      method: direct.method ?? 'GET',
      headers: direct.headers ?? {},
      ...(body ? { body } : {}),
      dispatcher: this.bucketDispatcher,
    });
  }

  /** Uploads `body` with a presigned `PUT`; the bucket checks the signed size (and, where it can, SHA-256). */
  private async putToUrl(direct: DirectTransfer, body: Readable): Promise<void> {
    const response = await this.viaUrl(direct, body);
    if (response.statusCode !== 200) throw await refusal(response, `PUT blob ${direct.url?.split('?')[0]}`);
    await response.body.dump();
  }

  /**
   * Blob `sha256` as a stream, for a reader that writes it somewhere of its own as it arrives
   * (the worker's cache, following the download while a module extracts it): from the
   * orchestrator's bucket by a presigned URL when it has one (as {@link getToFile}), else the
   * blob route; `size` from the answer's `Content-Length`; `body` passes the bytes on as they
   * arrive, hashed, holding the last chunk back until all of them hash to `sha256`, so a damaged
   * blob errors (`BlobDamagedError`) before its reader has it whole. Destroy `body` to abandon
   * the transfer.
   * @throws ArtifactStoreError (404 `ArtifactNotFound`, 401/403)
   */
  async get(sha256: string): Promise<{ size: number; body: Readable }> {
    const { response, size } = await this.download(sha256);
    const verifying = new VerifyingStream(sha256, size);
    // A transfer cut midway reaches the reader as a `BlobDownloadCutError` (listened to before
    // the pipeline's own listener, so that it is the error `verifying` is destroyed with).
    response.body.once('error', (error) =>
      verifying.destroy(downloadError(error, sha256, verifying.seen, size) as Error),
    );
    // Errors of either side reach the reader through `verifying`; destroying it ends the request.
    pipeline(response.body, verifying).catch(() => undefined);
    return { size, body: verifying };
  }

  /**
   * Starts the download of blob `sha256`: from the orchestrator's bucket by a presigned URL when
   * it has one, else the blob route; `size` from the answer's `Content-Length`.
   * @throws ArtifactStoreError for any answer but 200
   */
  private async download(sha256: string): Promise<{ response: Dispatcher.ResponseData; size: number }> {
    const direct = await this.transfer(sha256, 'download');
    const response = direct ? await this.viaUrl(direct) : await this.call('GET', sha256);
    if (response.statusCode !== 200)
      throw await refusal(response, `GET blob ${sha256}${direct ? ' from the bucket' : ''}`);
    return { response, size: Number(response.headers['content-length']) };
  }

  /** Closes the client's connections. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([this.agent?.close(), this.bucketDispatcher?.close()]);
  }
}

async function refusal(response: Dispatcher.ResponseData, what: string): Promise<ArtifactStoreError> {
  let code: string | undefined;
  let message = `${what}: ${response.statusCode}`;
  try {
    const text = await response.body.text();
    // An S3 error is XML: `<Error><Code>AccessDenied</Code><Message>Request has expired</Message>…`.
    const xml = /<Code>([^<]*)<\/Code>(?:\s*<Message>([^<]*)<\/Message>)?/.exec(text);
    if (xml) return new ArtifactStoreError(response.statusCode, xml[1], `${message} ${xml[1]} ${xml[2] ?? ''}`.trim());
    const body = JSON.parse(text) as { code?: string; errorMessage?: string };
    code = body.code;
    if (body.errorMessage) message = `${what}: ${response.statusCode} ${body.code ?? ''} ${body.errorMessage}`;
  } catch {
    // not the contract's error body (a HEAD has none)
  }
  return new ArtifactStoreError(response.statusCode, code, message);
}
