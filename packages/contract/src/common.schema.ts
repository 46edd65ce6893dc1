import { datetimeRegex, z } from 'zod';
import { LIMITS } from './limits.js';
import { parseTimeSpan } from './time-span.js';
import { capFieldIssues, truncateText } from './validation.js';

/**
 * zod's `z.string().datetime(options)`, which tests a valid timestamp against one RegExp made
 * once: zod 3.25's `ZodString._parse` builds a `datetime` check's RegExp on every parse
 * (`datetimeRegex(check)`: its source concatenated, then `new RegExp`): 0.83 µs a timestamp,
 * 0.05 µs with one RegExp (docs/performance.md "Timestamps parsed with one RegExp (issue 14, round G)");
 * `execute`, `cancel` and heartbeat bodies carry one each. A value that fails the test goes through zod's
 * own parse, so its issue and message are zod's; the check stays in `_def.checks`, so the
 * OpenAPI documents keep `format: date-time`. Chaining another check (`.max()`) gives back a
 * plain `ZodString`.
 */
class IsoDateTimeString extends z.ZodString {
  /** What the datetime check takes, made once (`ISO_DATE_TIME.test` for a check without zod). */
  readonly pattern: RegExp;

  /**
   * Takes a schema definition, as every zod schema's constructor does: zod copies a schema with
   * `new this.constructor({ ...this._def, … })` (`.describe()`), which then keeps the check.
   * @param def a definition whose only check is a `datetime` one (`z.string().datetime(…)._def`)
   */
  constructor(def: z.ZodStringDef) {
    super(def);
    const [check] = def.checks;
    if (check?.kind !== 'datetime') throw new Error('z.string().datetime() made no datetime check');
    this.pattern = datetimeRegex(check);
  }

  override _parse(input: z.ParseInput): z.ParseReturnType<string> {
    // The datetime check is the only one: a string it takes is valid as it is.
    if (typeof input.data === 'string' && this.pattern.test(input.data)) return { status: 'valid', value: input.data };
    return super._parse(input);
  }
}

/** An ISO-8601 timestamp with a `Z` or an offset, e.g. `2025-09-30T10:00:00Z`. */
export const isoDateTimeSchema: z.ZodString = new IsoDateTimeString(
  z.string().datetime({ offset: true, message: 'must be an ISO-8601 timestamp such as 2025-09-30T10:00:00Z' })._def,
);

/** The test {@link isoDateTimeSchema} makes of a string, for checks without zod (`heartbeatRequestCheck`). */
export const ISO_DATE_TIME: RegExp = (isoDateTimeSchema as IsoDateTimeString).pattern;

/** A .NET TimeSpan string such as `"00:02:30"` or `"1.02:03:04.5"` (see {@link parseTimeSpan}). */
export const timeSpanSchema = z.string().refine((value) => parseTimeSpan(value) !== undefined, {
  message: 'must be a TimeSpan such as 00:02:30 or 1.02:03:04.5',
});

/** A non-negative TimeSpan, for durations and timeouts. */
export const durationSchema = timeSpanSchema.refine((value) => (parseTimeSpan(value) ?? -1) >= 0, {
  message: 'must not be negative',
});

/** Identifiers that travel in bodies only (execution ids, incarnations): printable, no whitespace, bounded ({@link LIMITS}`.identifier`). */
/**
 * An array of `item`s, at most `max` of them, whose length is checked before any item: zod's own
 * `.max()` is checked only after every item was validated, so a body with 250,000 items costs a
 * quarter of a second of CPU before its 400 (issue 11, case 1). Longer arrays are cut to
 * `max + 1` items first, so the answer still says `must contain at most max` for the field. The
 * OpenAPI document shows the array as it is (a preprocess step leaves the schema unchanged).
 */
export function boundedArray<T extends z.ZodTypeAny>(item: T, max: number): z.ZodArray<T> {
  const bounded = z.preprocess(
    (value) => (Array.isArray(value) && value.length > max ? value.slice(0, max + 1) : value),
    z.array(item).max(max),
  );
  // Typed as the array it validates (a preprocess step's input type is `unknown`): the wire
  // types of the contract's clients stay what they were.
  return bounded as unknown as z.ZodArray<T>;
}

export const identifierSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(LIMITS.identifier.maxLength, `must be at most ${LIMITS.identifier.maxLength} characters`)
  .regex(LIMITS.identifier.pattern, `must be ${LIMITS.identifier.alphabet}`);

/**
 * A worker id, in bodies and in paths alike: 1 to 128 of RFC 3986's unreserved characters,
 * starting with a letter or digit ({@link LIMITS}`.workerId`), so that it means one worker
 * wherever it is written (`w1?evil` or `x/../../workers/w2` would name another in a URL).
 */
export const workerIdSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(LIMITS.workerId.maxLength, `must be at most ${LIMITS.workerId.maxLength} characters`)
  .regex(LIMITS.workerId.pattern, `must be ${LIMITS.workerId.alphabet}`);

/** One problem in a request, with the dotted path of the field it concerns. */
export const fieldIssueSchema = z.object({
  /** Where the problem is, e.g. `body.workerNode.capabilities.maxParallelModules`. */
  field: z.string(),
  message: z.string(),
});
export type FieldIssue = z.infer<typeof fieldIssueSchema>;

/** Machine-readable error codes used across both APIs. */
export const errorCodeSchema = z.enum([
  'ValidationFailed',
  'MalformedJson',
  'PayloadTooLarge',
  'WorkerNotFound',
  'ExecutionNotFound',
  'ModuleNotFound',
  'WorkerAtCapacity',
  'WorkerDraining',
  'RouteNotFound',
  'InternalError',
  'Unauthorized',
  'Forbidden',
  'WorkerIdTaken',
  'RateLimited',
  'UnsupportedMediaType',
  'EndpointNotAllowed',
  'WorkerReplaced',
  'TooManyWorkers',
  'TooManyPipelines',
  'WorkerNotReady',
  'ExecutionIdConflict',
  // --- artifacts (issue 13, slice A) ---
  'ArtifactNotFound',
  'ArtifactHashMismatch',
  'LengthRequired',
  'ArtifactStoreUnavailable',
  'ArtifactHashRequired',
  'OutputGap',
]);
export type ErrorCode = z.infer<typeof errorCodeSchema>;

/**
 * The error body every route answers with on 4xx/5xx (the spec's
 * `{ "success": false, "errorMessage": "..." }`, with a code and field issues added). `issues`
 * holds at most {@link LIMITS}`.errorAnswer.maxIssues` field issues; `omittedIssues` counts the
 * ones left out (absent when none were).
 */
export const errorBodySchema = z.object({
  success: z.literal(false),
  errorMessage: z.string(),
  code: errorCodeSchema.optional(),
  issues: z.array(fieldIssueSchema).optional(),
  /** How many more issues the request had than `issues` lists. */
  omittedIssues: z.number().int().positive().optional(),
});
export type ErrorBody = z.infer<typeof errorBodySchema>;

/**
 * The HTTP status of each error code: one table for every route and middleware of both
 * servers (tRPC's practice: `getHTTPStatusCode` from one code table), so a code always comes
 * with the same status.
 */
export const ERROR_STATUS = {
  ValidationFailed: 400,
  MalformedJson: 400,
  EndpointNotAllowed: 400,
  Unauthorized: 401,
  Forbidden: 403,
  WorkerNotFound: 404,
  ExecutionNotFound: 404,
  ModuleNotFound: 404,
  RouteNotFound: 404,
  WorkerIdTaken: 409,
  WorkerReplaced: 409,
  /** An execute whose `executionId` the worker knows, with another module or other inputs. */
  ExecutionIdConflict: 409,
  /** An output batch that starts past the next line the orchestrator expects (its body says `expectedSeq`). */
  OutputGap: 409,
  PayloadTooLarge: 413,
  UnsupportedMediaType: 415,
  WorkerAtCapacity: 429,
  RateLimited: 429,
  InternalError: 500,
  WorkerDraining: 503,
  TooManyWorkers: 503,
  TooManyPipelines: 503,
  /** A worker that takes calls only with a credential has none yet: its first registration has not completed. */
  WorkerNotReady: 503,
  // --- artifacts (issue 13, slice A) ---
  /** No blob with that SHA-256 in the store. */
  ArtifactNotFound: 404,
  /** An uploaded blob whose bytes do not hash to the SHA-256 it was sent under: not kept. */
  ArtifactHashMismatch: 400,
  /** A streamed upload without `Content-Length` (RFC 9110 §15.5.12): its size must be known before it is read. */
  LengthRequired: 411,
  /** The orchestrator's S3-compatible bucket refused or failed a call (its credentials, its reach): the bucket's error code is in the message. */
  ArtifactStoreUnavailable: 502,
  /**
   * An upload without a hash (`POST /api/artifacts/blobs`) to an orchestrator whose store is an
   * S3-compatible bucket: a presigned upload signs the blob's SHA-256, so it must be known first.
   */
  ArtifactHashRequired: 409,
} as const satisfies Record<ErrorCode, number>;

/** An error body as {@link errorBody} builds it. */
export interface ErrorBodyOf<C extends ErrorCode> {
  success: false;
  errorMessage: string;
  code: C;
  issues?: FieldIssue[];
  omittedIssues?: number;
}

const utf8 = new TextEncoder();

/**
 * The contract's error body (`{ success: false, errorMessage, code, issues?, omittedIssues? }`),
 * of bounded size whatever it is given ({@link LIMITS}`.errorAnswer`): `errorMessage` cut to
 * `maxMessageLength` characters, the first `maxIssues` issues with their texts cut to
 * `maxTextLength`, and issues dropped from the end while the JSON is over `maxBytes` (JSON
 * escapes may make a cut text six times longer). Dropped issues count in `omittedIssues`, with
 * `omitted` the caller already left out.
 */
export function errorBody<C extends ErrorCode>(
  code: C,
  errorMessage: string,
  issues?: readonly FieldIssue[],
  omitted = 0,
): ErrorBodyOf<C> {
  const message = truncateText(errorMessage, LIMITS.errorAnswer.maxMessageLength);
  if (!issues) return { success: false, errorMessage: message, code };
  const capped = capFieldIssues(issues, omitted);
  const body: ErrorBodyOf<C> = { success: false, errorMessage: message, code, issues: capped.issues };
  if (capped.omitted > 0) body.omittedIssues = capped.omitted;
  while (capped.issues.length > 0 && utf8.encode(JSON.stringify(body)).length > LIMITS.errorAnswer.maxBytes) {
    capped.issues.pop();
    body.omittedIssues = (body.omittedIssues ?? 0) + 1;
  }
  return body;
}

/**
 * An error answer as a ts-rest route returns it: the status {@link ERROR_STATUS} gives `code`,
 * and the contract's error body.
 *
 * ```ts
 * return errorResponse('WorkerNotFound', `Worker '${id}' is not registered`); // { status: 404, body }
 * ```
 */
export function errorResponse<C extends ErrorCode>(
  code: C,
  errorMessage: string,
  issues?: readonly FieldIssue[],
  omitted = 0,
): { status: (typeof ERROR_STATUS)[C]; body: ErrorBodyOf<C> } {
  return { status: ERROR_STATUS[code], body: errorBody(code, errorMessage, issues, omitted) };
}

/**
 * Responses every route may give: a malformed request, a missing or wrong token, a body over
 * the size limit, a body that is not JSON, too many requests, an unexpected failure.
 */
export const commonResponses = {
  400: errorBodySchema,
  401: errorBodySchema,
  413: errorBodySchema,
  415: errorBodySchema,
  429: errorBodySchema,
  500: errorBodySchema,
} as const;
