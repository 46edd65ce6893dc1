import { z } from 'zod';
import { boundedArray, durationSchema, identifierSchema, isoDateTimeSchema, workerIdSchema } from './common.schema.js';
import { LIMITS } from './limits.js';

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

export const workerHealthSchema = z.object({
  status: z.literal('healthy'),
  currentLoad: z.number().int().min(0),
  maxLoad: z.number().int().min(1),
  timestamp: isoDateTimeSchema,
});
export type WorkerHealth = z.infer<typeof workerHealthSchema>;
