import { initContract } from '@ts-rest/core';
import { z } from 'zod';
import { commonResponses, errorBodySchema, identifierSchema, workerIdSchema } from './common.schema.js';
import {
  heartbeatRequestSchema,
  heartbeatResponseSchema,
  orchestratorHealthSchema,
  registerWorkerHeadersSchema,
  registerWorkerRequestSchema,
  registerWorkerResponseSchema,
  unregisterWorkerResponseSchema,
  drainWorkerResponseSchema,
  workerListSchema,
} from './workers.schema.js';
import {
  blobParamsSchema,
  blobTransferRequestSchema,
  blobTransferSchema,
  putBlobResponseSchema,
} from './artifacts.schema.js';
import { outputAcceptedSchema, outputBatchSchema, outputGapSchema } from './output.schema.js';

const c = initContract();

/**
 * A worker acting on itself names its incarnation, so that a process whose id another
 * incarnation took cannot drain or unregister its successor (409 `WorkerReplaced`).
 */
const incarnationQuerySchema = z.object({ incarnation: identifierSchema.optional() });

/** `/api/workers`: registration, heartbeats and the registry. */
export const workersContract = c.router({
  register: {
    method: 'POST',
    path: '/api/workers/register',
    summary:
      "Register a worker (idempotent for the same id with its credential; a live worker's id without it answers 409, but for the holder's own retry after a lost answer, by its Idempotency-Key and a greater sequence)",
    body: registerWorkerRequestSchema,
    headers: registerWorkerHeadersSchema,
    responses: {
      200: registerWorkerResponseSchema,
      /** A valid token that is not the join token (a worker credential, say). */
      403: errorBodySchema,
      /**
       * `WorkerIdTaken`: the id is held by a live worker and the request does not carry its
       * credential (with or without a join token), with `Retry-After` (the seconds until the
       * holder's heartbeat lease ends, whole, at least 1, at most the heartbeat timeout plus 1),
       * whatever the request's `incarnation`; unless it is the holder's own retry after a lost
       * answer (its `Idempotency-Key`, incarnation and registration, a greater `sequence`, the
       * holder's credential never used: 200 and a new credential, the unused one revoked; see
       * `registerWorkerHeadersSchema`). This holds only while the holder is registered: an
       * unregistered id is free, and without a join token or an admin token anyone may
       * unregister it (README, Security, "Who can take a live worker's id").
       */
      409: errorBodySchema,
      /**
       * `TooManyWorkers` (a new id past `--max-workers`) or `TooManyPipelines` (a new distinct
       * pipeline past `--max-pipelines`), with `Retry-After`.
       */
      503: errorBodySchema,
    },
  },
  heartbeat: {
    method: 'POST',
    path: '/api/workers/heartbeat',
    summary:
      "Report a worker's liveness and load; 404 tells an unknown worker to register again, 409 WorkerReplaced a process whose id another incarnation took",
    body: heartbeatRequestSchema,
    responses: {
      200: heartbeatResponseSchema,
      403: errorBodySchema,
      404: errorBodySchema,
      /** `WorkerReplaced`: the heartbeat's incarnation is no longer the registered one. */
      409: errorBodySchema,
    },
  },
  list: {
    method: 'GET',
    path: '/api/workers',
    summary: 'List registered workers with their status',
    responses: { 200: workerListSchema, 403: errorBodySchema },
  },
  drain: {
    method: 'POST',
    path: '/api/workers/:workerId/drain',
    summary:
      'Drain a worker: it gets no new modules, finishes what it runs, then unregisters and exits (its heartbeat answers say shouldDrain: true)',
    pathParams: z.object({ workerId: workerIdSchema }),
    query: incarnationQuerySchema,
    body: c.noBody(),
    responses: { 200: drainWorkerResponseSchema, 403: errorBodySchema, 404: errorBodySchema, 409: errorBodySchema },
  },
  /**
   * Unregisters a worker, which frees its id for the next registration. When a join token or an
   * admin token is set, takes the worker's own credential (or the admin token, if set); open when
   * neither is (the spec), so anyone who reaches such an orchestrator can free any worker's id
   * and register it (README, Security, "Who can take a live worker's id").
   */
  unregister: {
    method: 'DELETE',
    path: '/api/workers/:workerId',
    summary: 'Unregister a worker',
    pathParams: z.object({ workerId: workerIdSchema }),
    query: incarnationQuerySchema,
    body: c.noBody(),
    responses: {
      200: unregisterWorkerResponseSchema,
      403: errorBodySchema,
      404: errorBodySchema,
      409: errorBodySchema,
    },
  },
});

export const orchestratorHealthContract = c.router({
  get: {
    method: 'GET',
    path: '/api/health',
    summary: 'Orchestrator health and the number of available workers',
    responses: { 200: orchestratorHealthSchema },
  },
});

// --- artifacts (issue 13, slice A) ---
/**
 * `/api/artifacts/blobs/{sha256}`: the orchestrator's content-addressed blob store. Bodies are
 * raw bytes (`application/octet-stream`), streamed: the server reads them through route
 * middleware, never the JSON parser. A worker's credential or the admin token; anything else is
 * refused (401/403) before the body is read.
 */
export const artifactsContract = c.router({
  getBlob: {
    method: 'GET',
    path: '/api/artifacts/blobs/:sha256',
    summary:
      'Download a blob (streamed, Content-Length set). HEAD answers the same headers without the body: 200 when the store has it, 404 when not. The server hashes the bytes as it sends them and cuts the connection if they do not match the name (a damaged file): verify what you read',
    pathParams: blobParamsSchema,
    responses: {
      200: c.otherResponse({ contentType: 'application/octet-stream', body: c.type<Uint8Array>() }),
      403: errorBodySchema,
      404: errorBodySchema,
      /** `ArtifactStoreUnavailable`: the orchestrator's bucket failed the call. */
      502: errorBodySchema,
    },
  },
  putBlob: {
    method: 'PUT',
    path: '/api/artifacts/blobs/:sha256',
    summary:
      'Upload a blob under its SHA-256 (application/octet-stream, Content-Length required, at most --max-artifact-size): kept only when its bytes hash to the name (else 400 ArtifactHashMismatch); 201 when stored, 200 when the store already had it',
    pathParams: blobParamsSchema,
    body: c.type<Uint8Array>(),
    responses: {
      200: putBlobResponseSchema,
      201: putBlobResponseSchema,
      403: errorBodySchema,
      /** `LengthRequired`: no `Content-Length`. */
      411: errorBodySchema,
      /** `ArtifactStoreUnavailable`: the orchestrator's bucket failed the call. */
      502: errorBodySchema,
    },
  },
  // --- the pack streamed into the upload (issue 13, round J) ---
  uploadBlob: {
    method: 'POST',
    path: '/api/artifacts/blobs',
    summary:
      'Upload a blob whose SHA-256 is not known yet (mpd addition; application/octet-stream, streamed: chunked or with Content-Length, at most --max-artifact-size): the store hashes it as it writes it and names it by its hash; the answer says which. 201 when stored, 200 when the store already had it (the body was read and dropped). 413 PayloadTooLarge before reading a Content-Length past the limit, or once a chunked body passes it (nothing kept, the connection closed); 409 ArtifactHashRequired before the body is read when the store is an S3-compatible bucket (a presigned upload needs the hash first: use the transfers route)',
    body: c.type<Uint8Array>(),
    responses: {
      200: putBlobResponseSchema,
      201: putBlobResponseSchema,
      403: errorBodySchema,
      /** `ArtifactHashRequired`: the orchestrator keeps blobs in a bucket; upload by hash. */
      409: errorBodySchema,
      /** `PayloadTooLarge`: past `--max-artifact-size`. */
      413: errorBodySchema,
      /** `UnsupportedMediaType`: a `Content-Type` other than `application/octet-stream`. */
      415: errorBodySchema,
    },
  },
  // --- S3-compatible store (issue 13, slice S) ---
  transfer: {
    method: 'POST',
    path: '/api/artifacts/blobs/:sha256/transfers',
    summary:
      'Ask how to move a blob (mpd addition): { store: "orchestrator" } to use the blob routes, or { store: "url", exists, size, method, url, headers, expiresAt } to move the bytes directly to or from an S3-compatible bucket with a presigned URL (send exactly those headers, no mpd credential). 404 ArtifactNotFound for a download of a blob the store lacks; 413 for an upload over --max-artifact-size, before any URL is made',
    pathParams: blobParamsSchema,
    body: blobTransferRequestSchema,
    responses: {
      200: blobTransferSchema,
      403: errorBodySchema,
      404: errorBodySchema,
      413: errorBodySchema,
      /** `ArtifactStoreUnavailable`: the orchestrator's bucket failed the call. */
      502: errorBodySchema,
    },
  },
});

// --- Module output (issue 13, slice L) ---
/** `/api/executions/{executionId}`: what a worker reports of an execution dispatched to it. */
export const executionsContract = c.router({
  output: {
    method: 'POST',
    path: '/api/executions/:executionId/output',
    summary:
      "Append a batch of an execution's output lines (worker credential; only the worker it was dispatched to); idempotent by sequence number",
    pathParams: z.object({ executionId: identifierSchema }),
    body: outputBatchSchema,
    responses: {
      200: outputAcceptedSchema,
      /** A token that is not a worker's credential. */
      403: errorBodySchema,
      /** `ExecutionNotFound`: no execution of that id was dispatched to this worker (or its log is closed and gone). */
      404: errorBodySchema,
      /** `OutputGap`: the batch starts past the next expected line; resend from `expectedSeq`. */
      409: outputGapSchema,
    },
  },
});
// --- end of module output ---

/** The orchestrator's HTTP API. */
export const orchestratorContract = c.router(
  {
    workers: workersContract,
    health: orchestratorHealthContract,
    artifacts: artifactsContract,
    executions: executionsContract,
  },
  { strictStatusCodes: true, commonResponses },
);
export type OrchestratorContract = typeof orchestratorContract;
