/**
 * The artifact store's routes (`orchestratorContract.artifacts`), as route middleware: their
 * bodies are raw bytes, streamed to and from disk, so they answer before the JSON parser and
 * ts-rest's handler would run (the path is the contract's; `createRoutes` attaches these to it,
 * after authentication).
 */
import {
  blobParamsSchema,
  type BlobTransferRequest,
  describeBytes,
  describeFieldIssues,
  errorResponse,
  toFieldIssues,
} from '@mpd/contract';
import { closeWhenDrained, refuseUnread, sendError } from '@mpd/server-kit';
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { type ArtifactStore, ArtifactStoreUnavailableError } from '../artifacts/artifact-store.js';
import { BlobWriteError } from '../artifacts/blob-store.js';

/** Why a blob of `size` bytes is refused (413) by a store of at most `maxBytes`. */
const overLimit = (size: number, maxBytes: number): string =>
  `a blob of ${describeBytes(size)} is over the store's limit of ${describeBytes(maxBytes)} (--max-artifact-size)`;

/**
 * `POST /api/artifacts/blobs/{sha256}/transfers`' answer: how to move the blob. An upload over
 * `maxBytes` is refused (413, naming `body.size`) before the store is asked or any URL made; a
 * download of a blob the store lacks is 404 `ArtifactNotFound`.
 */
export async function blobTransfer(store: ArtifactStore, maxBytes: number, sha256: string, body: BlobTransferRequest) {
  if (body.direction === 'upload' && body.size! > maxBytes) {
    const message = overLimit(body.size!, maxBytes);
    return errorResponse('PayloadTooLarge', `body.size: ${message}`, [{ field: 'body.size', message }]);
  }
  let transfer;
  try {
    transfer = await store.transfer(sha256, body.direction, body.size);
  } catch (error) {
    if (error instanceof ArtifactStoreUnavailableError) return errorResponse('ArtifactStoreUnavailable', error.message);
    throw error;
  }
  if (transfer === undefined) return errorResponse('ArtifactNotFound', `The store has no blob ${sha256}`);
  return { status: 200 as const, body: transfer };
}

/** The blob routes' middleware: `get` (GET and HEAD), `put`, and `post` (an upload without a known hash). */
export interface BlobRoutes {
  get: RequestHandler;
  put: RequestHandler;
  post: RequestHandler;
}

/** 415 for a blob body that is not `application/octet-stream` (none given is taken as such); true once answered. */
function refusedType(req: Request, res: Response): boolean {
  const type = req.headers['content-type'];
  if (type === undefined || req.is('application/octet-stream')) return false;
  refuseUnread(req, res, {
    code: 'UnsupportedMediaType',
    message: `headers.content-type: blobs are uploaded as application/octet-stream, got ${JSON.stringify(type)}`,
  });
  return true;
}

/**
 * @param store where blobs are kept
 * @param maxBytes the largest blob a PUT may declare (413 before reading past it)
 */
export function blobRoutes(store: ArtifactStore, maxBytes: number, logger: Logger): BlobRoutes {
  return {
    get: (req, res, next) => {
      const sha256 = checkedSha256(req, res);
      if (sha256 === undefined) return;
      serveBlob(store, sha256, req, res, logger).catch(unlessUnavailable(req, res, logger, next));
    },
    put: (req, res, next) => {
      const sha256 = checkedSha256(req, res);
      if (sha256 === undefined) return;
      const length = req.headers['content-length'];
      if (length === undefined || !/^\d+$/.test(length)) {
        refuseUnread(req, res, {
          code: 'LengthRequired',
          message: 'headers.content-length: a blob upload needs Content-Length (its size, in bytes)',
        });
        return;
      }
      const size = Number(length);
      if (size > maxBytes) {
        refuseUnread(req, res, {
          code: 'PayloadTooLarge',
          message: `headers.content-length: ${overLimit(size, maxBytes)}`,
        });
        return;
      }
      if (refusedType(req, res)) return;
      storeBlob(store, sha256, size, req, res, logger).catch(unlessUnavailable(req, res, logger, next));
    },
    post: (req, res, next) => {
      if (store.putUnnamed === undefined) {
        refuseUnread(req, res, {
          code: 'ArtifactHashRequired',
          message: `the orchestrator keeps blobs in an S3-compatible bucket, which must know a blob's SHA-256 before its bytes: upload it by its hash (POST /api/artifacts/blobs/{sha256}/transfers, then the URL given)`,
        });
        return;
      }
      // Optional here (a producer streams its archive as it packs it: chunked); one past the limit
      // is refused before a byte is read. (Node's parser answers 400 for one that is not a number.)
      const length = req.headers['content-length'];
      if (length !== undefined && Number(length) > maxBytes) {
        refuseUnread(req, res, {
          code: 'PayloadTooLarge',
          message: `headers.content-length: ${overLimit(Number(length), maxBytes)}`,
        });
        return;
      }
      if (refusedType(req, res)) return;
      storeUnnamedBlob(store.putUnnamed.bind(store), maxBytes, req, res, logger).catch(
        unlessUnavailable(req, res, logger, next),
      );
    },
  };
}

/**
 * A route's failure handler: the store's backend failing answers 502 `ArtifactStoreUnavailable`
 * (logged: the operator's to fix), the body unread; anything else goes on to the error handler.
 */
function unlessUnavailable(req: Request, res: Response, logger: Logger, next: (error: unknown) => void) {
  return (error: unknown): void => {
    if (!(error instanceof ArtifactStoreUnavailableError)) return next(error);
    logger.error({ err: error }, 'artifact store: the bucket failed a call');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    refuseUnread(req, res, { code: 'ArtifactStoreUnavailable', message: error.message });
  };
}

/** The request's `sha256` path parameter, or undefined once a 400 naming it was answered. */
function checkedSha256(req: Request, res: Response): string | undefined {
  const parsed = blobParamsSchema.safeParse(req.params);
  if (parsed.success) return parsed.data.sha256;
  const issues = toFieldIssues(parsed.error, 'params');
  refuseUnread(req, res, { code: 'ValidationFailed', message: describeFieldIssues(issues, 0), issues });
  return undefined;
}

async function serveBlob(
  store: ArtifactStore,
  sha256: string,
  req: Request,
  res: Response,
  logger: Logger,
): Promise<void> {
  // A HEAD needs only the size: opening a bucket's object would start sending it.
  const blob = req.method === 'HEAD' ? undefined : await store.open(sha256);
  const size = req.method === 'HEAD' ? await store.sizeOf(sha256) : blob?.size;
  if (size === undefined) {
    sendError(res, 'ArtifactNotFound', `The store has no blob ${sha256}`);
    return;
  }
  res.status(200);
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Content-Length', String(size));
  if (blob === undefined) {
    res.end();
    return;
  }
  // The status and headers go now, whatever the file holds: a blob that fails its check is then
  // a 200 cut short (as the spec says), even when its first read already held all its bytes.
  res.flushHeaders();
  if ('send' in blob) {
    // A file the store verified, unchanged since: sent from two reused buffers (no stream of it).
    blob.send(res).then(
      () => res.end(),
      (error: Error) => {
        // Cut short, so the client sees a body shorter than its Content-Length: a client gone is
        // nothing to log; a file that changed under the store is.
        if (!res.destroyed)
          logger.error({ err: error, sha256 }, 'artifact store: a blob could not be sent whole; connection cut');
        res.destroy();
      },
    );
    return;
  }
  blob.stream.on('error', (error) => {
    // The bytes on disk are not the blob (damaged, or changed by someone): cut the connection,
    // so the client sees a body shorter than its Content-Length, never a complete wrong blob.
    logger.error({ err: error, sha256 }, 'artifact store: a blob failed its check as it was sent; connection cut');
    res.destroy();
  });
  blob.stream.pipe(res);
  res.on('close', () => blob.stream.destroy());
}

async function storeBlob(
  store: ArtifactStore,
  sha256: string,
  size: number,
  req: Request,
  res: Response,
  logger: Logger,
): Promise<void> {
  const held = await store.sizeOf(sha256);
  if (held !== undefined) {
    // Content-addressed: the store has these bytes. The body is read into nothing, so the
    // client's connection stays usable, and the answer says nothing was stored.
    req.resume();
    req.once('end', () => res.status(200).json({ sha256, size: held, stored: false }));
    return;
  }
  try {
    await store.put(sha256, size, req);
  } catch (error) {
    if (error instanceof BlobWriteError) {
      const code = error.code === 'HashMismatch' ? 'ArtifactHashMismatch' : 'ValidationFailed';
      sendError(res, code, `body: ${error.message}`);
      return;
    }
    if (req.destroyed || req.readableAborted) {
      // The client went away mid-upload: nothing to answer, nothing kept.
      logger.debug({ sha256 }, 'artifact store: an upload ended before its body was complete; not stored');
      return;
    }
    throw error;
  }
  res.status(201).json({ sha256, size, stored: true });
}

/**
 * `POST /api/artifacts/blobs`: the body stored as the blob it hashes to (see `BlobStore.putUnnamed`).
 * A body passing `maxBytes` (chunked, so not refused before it was read) gets 413 and the
 * connection is closed once that is sent and the rest of the body was read into nothing (at most
 * 16 MiB or 5 s more: `closeWhenDrained`), so the client reads the 413 rather than a reset.
 */
async function storeUnnamedBlob(
  putUnnamed: NonNullable<ArtifactStore['putUnnamed']>,
  maxBytes: number,
  req: Request,
  res: Response,
  logger: Logger,
): Promise<void> {
  let stored;
  try {
    stored = await putUnnamed(req, maxBytes);
  } catch (error) {
    if (error instanceof BlobWriteError && error.code === 'TooLarge') {
      // The rest of the body is read into nothing (bounded) before the connection closes, so
      // the client reads this answer rather than a reset.
      closeWhenDrained(req, res);
      sendError(
        res,
        'PayloadTooLarge',
        `body: the upload passed the store's limit of ${describeBytes(maxBytes)} (--max-artifact-size): nothing was stored`,
      );
      return;
    }
    if (req.destroyed || req.readableAborted) {
      logger.debug('artifact store: an upload without a hash ended before its body was complete; not stored');
      return;
    }
    throw error;
  }
  res.status(stored.stored ? 201 : 200).json(stored);
}
