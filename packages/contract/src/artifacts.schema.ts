import { z } from 'zod';
import { LIMITS } from './limits.js';

/**
 * A blob's SHA-256, as it names the blob on the wire and on disk: 64 lowercase hex digits
 * ({@link LIMITS}`.artifact.sha256`), so it can never be a path segment such as `..` or hold a `/`.
 */
export const sha256Schema = z
  .string()
  .regex(LIMITS.artifact.sha256.pattern, `must be ${LIMITS.artifact.sha256.alphabet}`);

/** The path parameters of the blob routes. */
export const blobParamsSchema = z.object({ sha256: sha256Schema });

/** `PUT /api/artifacts/blobs/{sha256}`'s answer: the blob the store holds now. */
export const putBlobResponseSchema = z.object({
  sha256: sha256Schema,
  /** Its size in bytes. */
  size: z.number().int().nonnegative(),
  /** `true` when this request stored it; `false` when the store had it already (the body was not kept). */
  stored: z.boolean(),
});
export type PutBlobResponse = z.infer<typeof putBlobResponseSchema>;

/**
 * A reference to an artifact in the store, as `ctx.artifacts.upload` returns it: plain JSON, so it
 * can travel in a module's result. The blob is a tar of `files` (paths relative to the upload's
 * base directory, `/`-separated), gzipped when `compression` is `gzip` or absent (references
 * written before the field existed).
 */
export const artifactRefSchema = z.object({
  name: z.string().min(1).max(LIMITS.artifact.name.maxLength).regex(LIMITS.artifact.name.pattern),
  sha256: sha256Schema,
  /** The archive's size in bytes. */
  size: z.number().int().nonnegative(),
  /** How many files the archive holds. */
  files: z.number().int().nonnegative(),
  /** `none`: a plain tar; `gzip`: a gzipped one (the default of references without the field). */
  compression: z.enum(['none', 'gzip']).optional(),
});
export type ArtifactRef = z.infer<typeof artifactRefSchema>;

// --- S3-compatible store (issue 13, slice S) ---
/**
 * `POST /api/artifacts/blobs/{sha256}/transfers`' body: which way a blob is to move. `size` (bytes)
 * is required for an upload: a presigned upload URL signs it (`Content-Length`), and a size past
 * `--max-artifact-size` is refused (413) before any URL is made.
 */
export const blobTransferRequestSchema = z
  .object({
    direction: z.enum(['upload', 'download']),
    size: z.number().int().nonnegative().optional(),
  })
  .strict()
  .refine((body) => body.direction !== 'upload' || body.size !== undefined, {
    message: 'required for an upload',
    path: ['size'],
  });
export type BlobTransferRequest = z.infer<typeof blobTransferRequestSchema>;

/**
 * Its answer. `store: 'orchestrator'`: the orchestrator keeps blobs itself; use the blob routes
 * (`HEAD`/`GET`/`PUT /api/artifacts/blobs/{sha256}`). `store: 'url'`: move the bytes directly with
 * `method` to `url`, sending exactly `headers` (they are signed) and no mpd credential; `exists`
 * says whether the store has the blob (an upload of a blob it has is not needed: no URL is given)
 * and `size` its size in bytes (the download's, to check what arrives; the upload's as signed).
 * `expiresAt`: when the URL stops being accepted (checked when a request starts: a transfer begun
 * before it runs to its end).
 */
export const blobTransferSchema = z.union([
  z.object({ store: z.literal('orchestrator') }).strict(),
  z
    .object({
      store: z.literal('url'),
      exists: z.boolean(),
      size: z.number().int().nonnegative(),
      method: z.enum(['PUT', 'GET']).optional(),
      url: z.string().url().optional(),
      headers: z.record(z.string()).optional(),
      expiresAt: z.string().datetime().optional(),
    })
    .strict(),
]);
export type BlobTransfer = z.infer<typeof blobTransferSchema>;
