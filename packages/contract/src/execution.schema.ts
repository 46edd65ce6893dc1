import { z } from 'zod';
import { bodyCheck, isIdentifier, isPlainObject, ownKeyCount } from './body-check.js';
import {
  boundedArray,
  durationSchema,
  errorBodySchema,
  identifierSchema,
  ISO_DATE_TIME,
  isoDateTimeSchema,
  workerIdSchema,
} from './common.schema.js';
import { LIMITS } from './limits.js';
import { parseTimeSpan } from './time-span.js';

const moduleNameSchema = z.string().min(1, 'must not be empty').max(LIMITS.moduleTypeName.maxLength);
const environmentNameSchema = z.string().min(1).max(LIMITS.environmentName.maxLength);

export const executeModuleRequestSchema = z.object({
  executionId: identifierSchema,
  /** The module's parameters as JSON text. */
  serializedModule: z.string(),
  /** The module's name in the pipeline. */
  moduleTypeName: moduleNameSchema,
  /**
   * Results of the module's dependencies, keyed by module name, each as JSON text. A result
   * stored by reference is the text of its reference, `{"$mpdRef":{"sha256":…,"size":…}}` (an
   * mpd addition): the worker fetches the value from the artifact store before `run`.
   */
  dependencyResults: z.record(moduleNameSchema, z.string()).default({}),
  environmentVariables: z.record(environmentNameSchema, z.string()).default({}),
  /**
   * Names of `environmentVariables` whose values are secrets (an mpd addition): the worker masks
   * them as `***` in every log line and error message it writes or returns.
   */
  secretEnvironmentVariables: boundedArray(environmentNameSchema, LIMITS.execute.maxSecretNames).optional(),
  workingDirectory: z.string().max(LIMITS.path.maxLength).optional(),
  /** How long the module may run (TimeSpan). The worker's default applies when absent. */
  timeout: durationSchema.optional(),
  timestamp: isoDateTimeSchema.optional(),
});
export type ExecuteModuleRequest = z.input<typeof executeModuleRequestSchema>;

/**
 * {@link executeModuleRequestSchema}'s check for the worker's execute route: a body as the schema
 * takes it unchanged — every field of the right type within its limits, `dependencyResults` and
 * `environmentVariables` present (the schema would fill in their `{}`), no key it would strip
 * (nor a record key `__proto__`, which zod's copy leaves out) — is taken as it came, in one pass
 * over its fields; anything else goes through the schema, whose issues name the fields at fault
 * in the 400. zod's parse copied the body and each of its records (3–5 % of a worker's main
 * thread per module in round H's profile, issue 14). The spec `execute-check.spec.ts` holds the
 * two together.
 */
export const executeModuleRequestCheck = bodyCheck(executeModuleRequestSchema, isPlainExecuteRequest);

/** Whether `value` is a string of 1 to `maxLength` characters. */
function isName(value: unknown, maxLength: number): boolean {
  return typeof value === 'string' && value.length > 0 && value.length <= maxLength;
}

/** Whether `value` is an object of string values whose keys are names of 1 to `maxKeyLength` characters. */
function isTextRecord(value: unknown, maxKeyLength: number): boolean {
  if (!isPlainObject(value)) return false;
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    if (key.length === 0 || key.length > maxKeyLength || key === '__proto__' || typeof value[key] !== 'string')
      return false;
  }
  return true;
}

function isPlainExecuteRequest(data: unknown): boolean {
  if (!isPlainObject(data)) return false;
  const {
    executionId,
    serializedModule,
    moduleTypeName,
    dependencyResults,
    environmentVariables,
    secretEnvironmentVariables,
    workingDirectory,
    timeout,
    timestamp,
  } = data;
  if (!isIdentifier(executionId) || typeof serializedModule !== 'string') return false;
  if (!isName(moduleTypeName, LIMITS.moduleTypeName.maxLength)) return false;
  if (!isTextRecord(dependencyResults, LIMITS.moduleTypeName.maxLength)) return false;
  if (!isTextRecord(environmentVariables, LIMITS.environmentName.maxLength)) return false;
  let keys = 5;
  if (secretEnvironmentVariables !== undefined) {
    if (!Array.isArray(secretEnvironmentVariables) || secretEnvironmentVariables.length > LIMITS.execute.maxSecretNames)
      return false;
    for (const name of secretEnvironmentVariables) if (!isName(name, LIMITS.environmentName.maxLength)) return false;
    keys++;
  }
  if (workingDirectory !== undefined) {
    if (typeof workingDirectory !== 'string' || workingDirectory.length > LIMITS.path.maxLength) return false;
    keys++;
  }
  if (timeout !== undefined) {
    if (typeof timeout !== 'string' || !((parseTimeSpan(timeout) ?? -1) >= 0)) return false;
    keys++;
  }
  if (timestamp !== undefined) {
    if (typeof timestamp !== 'string' || !ISO_DATE_TIME.test(timestamp)) return false;
    keys++;
  }
  return ownKeyCount(data) === keys;
}

/** Why an execution did not succeed (an mpd addition to the spec's failure body). */
export const failureKindSchema = z.enum(['Error', 'Cancelled', 'TimedOut']);
export type FailureKind = z.infer<typeof failureKindSchema>;

const executionTimesSchema = z.object({
  executionId: identifierSchema,
  duration: durationSchema,
  startTime: isoDateTimeSchema,
  endTime: isoDateTimeSchema,
  workerId: workerIdSchema,
});

export const executeModuleSuccessSchema = executionTimesSchema.extend({
  success: z.literal(true),
  /**
   * The module's result as JSON text (`"null"` for a module that returns nothing): at most the
   * worker's `maxResultBytes` in UTF-8 bytes, nested at most `LIMITS.json.maxDepth` deep (a
   * larger or deeper result fails its module instead). A result over the worker's
   * `inlineResultBytes` is stored in the artifact store and this is the text of its reference
   * instead, `{"$mpdRef":{"sha256":…,"size":…}}` (an mpd addition: still JSON text, the spec's
   * shape; the orchestrator keeps and passes it on as any result).
   */
  serializedResult: z.string(),
});
export type ExecuteModuleSuccess = z.infer<typeof executeModuleSuccessSchema>;

export const executeModuleFailureSchema = executionTimesSchema.extend({
  success: z.literal(false),
  errorMessage: z.string(),
  exceptionType: z.string(),
  stackTrace: z.string().nullable(),
  failureKind: failureKindSchema.optional(),
});
export type ExecuteModuleFailure = z.infer<typeof executeModuleFailureSchema>;

export type ExecuteModuleResponse = ExecuteModuleSuccess | ExecuteModuleFailure;

export const cancelExecutionRequestSchema = z.object({
  executionId: identifierSchema,
  reason: z.string().max(LIMITS.reason.maxLength).optional(),
  timestamp: isoDateTimeSchema.optional(),
});
export type CancelExecutionRequest = z.infer<typeof cancelExecutionRequestSchema>;

export const cancelExecutionResponseSchema = z.object({ success: z.literal(true) });
export type CancelExecutionResponse = z.infer<typeof cancelExecutionResponseSchema>;

/**
 * The cancel's 404: the spec's `{ "success": false, "errorMessage": "Execution not found" }`
 * (http-api.md, `POST /api/execution/cancel`: nothing running under that `executionId` to
 * cancel), code `ExecutionNotFound`, with `finished` added (an mpd addition, round R, R1):
 * - `finished: true`: the execution ran here and finished before the cancel came; its outcome
 *   (perhaps the module's success) is kept (the worker's `completedRetentionMs`, 10 minutes by
 *   default) and answered to the same execute request sent again (same `executionId`, module and
 *   inputs), which never runs it again. The orchestrator collects that outcome before it may run
 *   the module elsewhere: taking this 404 as "it runs nowhere" ran a module with side effects
 *   twice and dropped its first success (review R1 of round P, MED 2).
 * - `keptForMs` (with `finished: true`; integer ms, ≥ 0): how much longer the worker keeps that
 *   outcome, counted from its finish, not from the cancel (review S, 3). The orchestrator asks
 *   for it no later than that; an older worker leaves it out (the orchestrator's own window).
 * - absent: no execution of that id runs here or is kept (never here, or its outcome forgotten);
 *   the worker keeps the cancel as a tombstone, so the execute arriving later is not started.
 *   An older worker answers every cancel it does not run so, a finished one included: the
 *   orchestrator takes it as it always did (the attempt runs nowhere).
 */
export const cancelNotFoundSchema = errorBodySchema.extend({
  finished: z.literal(true).optional(),
  keptForMs: z.number().int().min(0).optional(),
});
export type CancelNotFound = z.infer<typeof cancelNotFoundSchema>;

export const workerHealthSchema = z.object({
  status: z.literal('healthy'),
  currentLoad: z.number().int().min(0),
  maxLoad: z.number().int().min(1),
  timestamp: isoDateTimeSchema,
});
export type WorkerHealth = z.infer<typeof workerHealthSchema>;
