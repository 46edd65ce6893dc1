import { z } from 'zod';
import { bodyCheck, isIdentifier, isPlainObject, isWorkerId, ownKeyCount } from './body-check.js';
import { boundedArray, identifierSchema, ISO_DATE_TIME, isoDateTimeSchema, workerIdSchema } from './common.schema.js';
import { endpointOrigin, WORKER_ENDPOINT_RULE } from './endpoint-origin.js';
import { LIMITS, moduleNameCharacters } from './limits.js';

export const workerStatusSchema = z.enum(['Available', 'Busy', 'Draining', 'Offline']);
export type WorkerStatus = z.infer<typeof workerStatusSchema>;

const nameSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(LIMITS.name.maxLength, `must be at most ${LIMITS.name.maxLength} characters`);

/** The most modules a worker may run at once (its `maxParallelModules`). */

export const workerCapabilitiesSchema = z.object({
  /** Operating system, e.g. `linux`, `windows`, `macos`. */
  os: nameSchema,
  installedTools: boundedArray(nameSchema, LIMITS.capabilities.maxListItems),
  maxParallelModules: z.number().int().min(1).max(LIMITS.capabilities.maxSlots),
  tags: boundedArray(nameSchema, LIMITS.capabilities.maxListItems),
  /**
   * The largest request body this worker accepts, in bytes: its `--body-limit` (an mpd
   * addition). The orchestrator sends it no execute request larger than this (its dependencies'
   * results travel in it); absent, it assumes a worker's default, 100 MiB.
   */
  bodyLimitBytes: z.number().int().positive().optional(),
});
export type WorkerCapabilities = z.infer<typeof workerCapabilitiesSchema>;

/** Which pipeline a worker has loaded (an mpd addition; absent for a worker without one). */
export const loadedPipelineSchema = z.object({
  name: nameSchema,
  /** Hash of the pipeline's module definitions: workers with equal fingerprints run the same code. */
  fingerprint: z.string().min(1).max(LIMITS.fingerprint.maxLength),
  modules: boundedArray(nameSchema, LIMITS.pipeline.maxModules).refine(
    (modules) => moduleNameCharacters(modules) <= LIMITS.pipeline.maxNameCharacters,
    {
      message: `the module names must take at most ${LIMITS.pipeline.maxNameCharacters} characters together`,
    },
  ),
});
export type LoadedPipeline = z.infer<typeof loadedPipelineSchema>;

export { endpointOrigin, WORKER_ENDPOINT_RULE };

/**
 * A worker's endpoint: `scheme://host:port` only ({@link endpointOrigin}, {@link WORKER_ENDPOINT_RULE}).
 * The spec's `http://worker1:9000` is one.
 */
export const workerEndpointSchema = z
  .string()
  .max(LIMITS.url.maxLength, `must be at most ${LIMITS.url.maxLength} characters`)
  .url(WORKER_ENDPOINT_RULE)
  // Not a URL at all: `url()` said so already (one issue per value).
  .refine((value) => !URL.canParse(value) || endpointOrigin(value) !== undefined, { message: WORKER_ENDPOINT_RULE });

export const workerNodeSchema = z.object({
  id: workerIdSchema,
  endpoint: workerEndpointSchema,
  capabilities: workerCapabilitiesSchema,
  lastHeartbeat: isoDateTimeSchema,
  currentLoad: z.number().int().min(0),
  status: workerStatusSchema,
  pipeline: loadedPipelineSchema.nullish(),
});
export type WorkerNode = z.infer<typeof workerNodeSchema>;

/**
 * The node a worker registers. The orchestrator owns `lastHeartbeat`, `currentLoad` and
 * `status` after registration, so a registration may leave them out.
 */
export const workerNodeRegistrationSchema = workerNodeSchema.extend({
  lastHeartbeat: isoDateTimeSchema.optional(),
  currentLoad: z.number().int().min(0).optional(),
  status: workerStatusSchema.optional(),
});
export type WorkerNodeRegistration = z.infer<typeof workerNodeRegistrationSchema>;

/** A per-worker secret the orchestrator issues at registration (an mpd addition to the spec). */
export const credentialSchema = z.string().min(LIMITS.credential.minLength).max(LIMITS.credential.maxLength);

export const registerWorkerRequestSchema = z.object({
  workerNode: workerNodeRegistrationSchema,
  timestamp: isoDateTimeSchema.optional(),
  /**
   * The credential this worker got at an earlier registration, if any: it proves the worker is
   * the one that holds this id, so it may register again while it still counts as live.
   */
  credential: credentialSchema.optional(),
  /**
   * The worker process's incarnation (an mpd addition): a random id each start of a worker
   * process mints and sends with every registration and heartbeat. A registration of a known id
   * with another incarnation replaces the worker: the orchestrator gives up the modules the old
   * process ran at once, and answers the old process's heartbeats 409 `WorkerReplaced`.
   */
  incarnation: identifierSchema.optional(),
  /**
   * The registration's sequence number in the worker process (an mpd addition): 1 at the
   * process's first registration attempt, one more at each attempt after it, never reused.
   * With the `Idempotency-Key` header ({@link registerWorkerHeadersSchema}) it lets the
   * orchestrator tell the process's retry after a lost answer (a greater number) from a stale
   * duplicate of an attempt it served already (the same or a smaller one), which never changes
   * anything. Absent: the registration is never taken as a retry.
   */
  sequence: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
});
export type RegisterWorkerRequest = z.infer<typeof registerWorkerRequestSchema>;

/** The header that carries a worker process's registration key (lower case, as node and ts-rest name headers). */
export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';

/**
 * `Idempotency-Key`: the worker process's registration key ({@link LIMITS}`.idempotencyKey`),
 * parsed to the key itself (without the Structured Field string's quotes). Never echoed: a bad
 * one is refused naming the header and the rule only.
 */
export const idempotencyKeySchema = z
  .string()
  .regex(
    LIMITS.idempotencyKey.pattern,
    `must be ${LIMITS.idempotencyKey.minLength} to ${LIMITS.idempotencyKey.maxLength} ${LIMITS.idempotencyKey.alphabet}, optionally in double quotes`,
  )
  .describe(
    "The worker process's registration key: a random secret (at least 128 bits) it makes at its start and sends on every registration, as a Structured Field string (quoted) or bare; with a greater body.sequence it makes a registration after a lost answer a retry. Never logged; the orchestrator keeps its SHA-256 only.",
  )
  .transform((value) => (value.startsWith('"') ? value.slice(1, -1) : value));

/**
 * The headers of a registration the contract reads (an mpd addition to the spec's route):
 * `Idempotency-Key`, the worker process's registration key: a random secret the process makes
 * at its start (at least 128 bits) and sends on every registration attempt, never logged nor
 * written anywhere. The orchestrator keeps only its SHA-256, and takes a registration of a live
 * worker's id without its credential as that worker's **retry** after a lost answer only when
 * the key, the incarnation and the registration (id, endpoint, capabilities, pipeline) are the
 * holder's, its `sequence` is greater than the holder's, and no request has used the holder's
 * credential yet: the unused credential is revoked and a new one issued (README "A
 * registration whose answer was lost"). Unlike the IETF draft's key, one key serves every
 * registration of a process, told apart by `sequence`; and a key reused with another body is
 * refused as any registration of a live id is (409 `WorkerIdTaken`), not 422.
 */
export const registerWorkerHeadersSchema = z.object({
  [IDEMPOTENCY_KEY_HEADER]: idempotencyKeySchema.optional(),
});

export const registerWorkerResponseSchema = z.object({
  success: z.literal(true),
  workerId: workerIdSchema,
  heartbeatIntervalSeconds: z.number().positive(),
  /**
   * The worker's credential (an mpd addition): the worker sends it as a bearer token on its
   * heartbeat, unregister and drain calls; the orchestrator sends it on every execute and cancel
   * call to this worker, and the worker accepts those calls from nobody else.
   */
  credential: credentialSchema.optional(),
  /**
   * How long after its last heartbeat the orchestrator counts the worker `Offline` and gives its
   * modules to others, in seconds (an mpd addition): the worker fences itself by it, cancelling
   * what it runs once no heartbeat has been acknowledged for this long.
   */
  heartbeatTimeoutSeconds: z.number().positive().optional(),
});
export type RegisterWorkerResponse = z.infer<typeof registerWorkerResponseSchema>;

export const heartbeatRequestSchema = z.object({
  workerId: workerIdSchema,
  currentLoad: z.number().int().min(0),
  timestamp: isoDateTimeSchema.optional(),
  /**
   * The `executionId` of every execution the worker is running now (an mpd addition; absent
   * from older workers). The orchestrator uses it to tell an attempt that finished on the
   * worker, its answer lost on the way, from one that still runs there, and asks for the kept
   * outcome again. At most one per slot. Taken only from a heartbeat carrying the worker's own
   * credential (an anonymous one, in a cluster without a join token, says nothing of them).
   */
  executions: boundedArray(identifierSchema, LIMITS.capabilities.maxSlots).optional(),
  /**
   * The `executionId` of every execution that finished on the worker since its last
   * acknowledged heartbeat (an mpd addition; absent from older workers): the worker keeps each
   * one's outcome (`completedRetentionMs`) and answers it to a re-sent execute with the same
   * `executionId`. It tells the orchestrator that an attempt which ran and finished between two
   * heartbeats (so never in `executions`) reached the worker, and that its outcome is there to
   * collect, rather than lost. At most `LIMITS.capabilities.maxSlots` (1,024), the newest. Taken
   * only from a heartbeat carrying the worker's own credential.
   */
  finished: boundedArray(identifierSchema, LIMITS.capabilities.maxSlots).optional(),
  /** The incarnation the worker registered with (see `registerWorkerRequestSchema`); absent from older workers. */
  incarnation: identifierSchema.optional(),
});
export type HeartbeatRequest = z.infer<typeof heartbeatRequestSchema>;

/**
 * {@link heartbeatRequestSchema}'s check for the orchestrator's heartbeat route: a heartbeat as
 * the schema takes it, with no key it would strip (what a worker sends: `workerId`,
 * `currentLoad`, `timestamp`, `executions`, `finished`, `incarnation`), is taken as it came, in one pass over
 * its fields; anything else goes through the schema, whose issues name the fields at fault in the
 * 400. zod's parse of a heartbeat (a copy of the object, a regex built for the timestamp) was
 * most of what ts-rest and zod added to a heartbeat (`pnpm bench`, benchmark 1, issue 14). The
 * spec `heartbeat-check.spec.ts` holds the two together.
 */
export const heartbeatRequestCheck = bodyCheck(heartbeatRequestSchema, isPlainHeartbeat);

function isPlainHeartbeat(data: unknown): boolean {
  if (!isPlainObject(data)) return false;
  const { workerId, currentLoad, timestamp, executions, finished, incarnation } = data;
  if (typeof currentLoad !== 'number' || !Number.isInteger(currentLoad) || currentLoad < 0) return false;
  if (!isWorkerId(workerId)) return false;
  let keys = 2;
  if (timestamp !== undefined) {
    if (typeof timestamp !== 'string' || !ISO_DATE_TIME.test(timestamp)) return false;
    keys++;
  }
  if (executions !== undefined) {
    if (!Array.isArray(executions) || executions.length > LIMITS.capabilities.maxSlots) return false;
    for (const execution of executions) if (!isIdentifier(execution)) return false;
    keys++;
  }
  if (finished !== undefined) {
    if (!Array.isArray(finished) || finished.length > LIMITS.capabilities.maxSlots) return false;
    for (const execution of finished) if (!isIdentifier(execution)) return false;
    keys++;
  }
  if (incarnation !== undefined) {
    if (!isIdentifier(incarnation)) return false;
    keys++;
  }
  return ownKeyCount(data) === keys;
}

/**
 * Most executions one heartbeat answer asks a worker to cancel (as many as a worker can run:
 * `maxParallelModules` is at most 1024). The orchestrator keeps at most this many per worker.
 */
export const MAX_HEARTBEAT_CANCELS = 1024;

/** An execution the worker must cancel, carried by a heartbeat answer. */
export const heartbeatCancelSchema = z.object({
  executionId: identifierSchema,
  /** Why, as the cancel call's `reason`. */
  reason: z.string().max(LIMITS.reason.maxLength),
});
export type HeartbeatCancel = z.infer<typeof heartbeatCancelSchema>;

export const heartbeatResponseSchema = z.object({
  acknowledged: z.literal(true),
  shouldDrain: z.boolean(),
  /**
   * Executions the worker must cancel, as if a cancel call had named each (an mpd addition):
   * attempts the orchestrator abandoned (lost, timed out, or the run stopped) whose cancel call
   * may not have got through. Listed again in every answer until the orchestrator knows the
   * cancel arrived; cancelling an execution the worker does not run does nothing.
   */
  cancel: z.array(heartbeatCancelSchema).max(MAX_HEARTBEAT_CANCELS).optional(),
});
export type HeartbeatResponse = z.infer<typeof heartbeatResponseSchema>;

export const workerListSchema = z.array(workerNodeSchema);

export const drainWorkerResponseSchema = z.object({
  success: z.literal(true),
  workerId: workerIdSchema,
  status: workerStatusSchema,
});
export type DrainWorkerResponse = z.infer<typeof drainWorkerResponseSchema>;

export const unregisterWorkerResponseSchema = z.object({ success: z.literal(true) });
export type UnregisterWorkerResponse = z.infer<typeof unregisterWorkerResponseSchema>;

export const orchestratorHealthSchema = z.object({
  status: z.literal('healthy'),
  availableWorkers: z.number().int().min(0),
  timestamp: isoDateTimeSchema,
});
export type OrchestratorHealth = z.infer<typeof orchestratorHealthSchema>;
