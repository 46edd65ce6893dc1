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
