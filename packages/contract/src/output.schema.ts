import { z } from 'zod';
import { bodyCheck, isPlainObject, isWorkerId, ownKeyCount } from './body-check.js';
import { boundedArray, errorBodySchema, workerIdSchema } from './common.schema.js';
import { LIMITS } from './limits.js';

/** Where a line of a module's output came from: a process's stdout or stderr, or the module's `ctx.logger`. */
export const outputStreamSchema = z.enum(['stdout', 'stderr', 'log']);
export type OutputStream = z.infer<typeof outputStreamSchema>;

/** The level of a `ctx.logger` line (absent for stdout and stderr lines). */
export const outputLevelSchema = z.enum(['debug', 'info', 'warn', 'error']);
export type OutputLevel = z.infer<typeof outputLevelSchema>;

/**
 * One line of a module's output, masked by the worker: when it was written (epoch ms), where,
 * and its text without the line break (at most {@link LIMITS}`.output.maxLineLength` characters:
 * the worker splits a longer line into pieces of that length, each a line of its own).
 */
export const outputLineSchema = z.object({
  /** At most ECMAScript's last date (8.64e15 ms, year 275760): every time a `Date` can hold. */
  time: z.number().int().nonnegative().max(8.64e15),
  stream: outputStreamSchema,
  level: outputLevelSchema.optional(),
  text: z.string().max(LIMITS.output.maxLineLength),
});
export type OutputLine = z.infer<typeof outputLineSchema>;

/**
 * A batch of an execution's output lines. `fromSeq` is the sequence number of its first line
 * (0-based per execution): a line already accepted is skipped, so a batch sent again never
 * duplicates one; a batch starting past the next expected line is refused (409 `OutputGap`).
 * `final: true` closes the execution's log (no line follows it).
 */
export const outputBatchSchema = z.object({
  workerId: workerIdSchema,
  fromSeq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  lines: boundedArray(outputLineSchema, LIMITS.output.maxLinesPerBatch),
  final: z.boolean().optional(),
});
export type OutputBatch = z.infer<typeof outputBatchSchema>;

/** 200 to an output batch: `acceptedThrough` is the next sequence number the orchestrator expects. */
export const outputAcceptedSchema = z.object({ acceptedThrough: z.number().int().nonnegative() });
export type OutputAccepted = z.infer<typeof outputAcceptedSchema>;

/** 409 `OutputGap` (the batch starts past the next expected line): resend from `expectedSeq`. */
export const outputGapSchema = errorBodySchema.extend({ expectedSeq: z.number().int().nonnegative() });
export type OutputGap = z.infer<typeof outputGapSchema>;

const STREAMS: ReadonlySet<unknown> = new Set(outputStreamSchema.options);
const LEVELS: ReadonlySet<unknown> = new Set(outputLevelSchema.options);
const LAST_TIME = 8.64e15;

/** Whether `line` is an {@link OutputLine} as {@link outputLineSchema} takes it, with no other key. */
function isOutputLine(line: unknown): boolean {
  if (!isPlainObject(line)) return false;
  const { time, stream, level, text } = line;
  if (typeof time !== 'number' || !Number.isInteger(time) || time < 0 || time > LAST_TIME) return false;
  if (!STREAMS.has(stream) || typeof text !== 'string' || text.length > LIMITS.output.maxLineLength) return false;
  const keys = ownKeyCount(line);
  return level === undefined ? keys === 3 : LEVELS.has(level) && keys === 4;
}

/**
 * {@link outputBatchSchema}'s check without its copy, for the orchestrator's output route: a
 * batch as the schema takes it (and with no key the schema would strip) is taken as it came, one
 * loop over its lines; anything else goes through the schema, whose answer (its data, or its
 * issues naming `lines.N.text` and the like for the 400) is the one given. zod's parse makes a
 * copy of every line object: with the JSON parse, most of the orchestrator's CPU per line
 * (`pnpm bench`, benchmark 5, issue 13). What this takes, the schema takes too (the spec test
 * `output-batch-check.spec.ts` holds them together); what it refuses the schema decides.
 */
export const outputBatchCheck = bodyCheck(outputBatchSchema, isPlainBatch);

function isPlainBatch(data: unknown): boolean {
  if (!isPlainObject(data)) return false;
  const { workerId, fromSeq, lines, final } = data;
  if (typeof fromSeq !== 'number' || !Number.isInteger(fromSeq) || fromSeq < 0 || fromSeq > Number.MAX_SAFE_INTEGER)
    return false;
  if (final !== undefined && typeof final !== 'boolean') return false;
  if (!Array.isArray(lines) || lines.length > LIMITS.output.maxLinesPerBatch) return false;
  if (ownKeyCount(data) !== (final === undefined ? 3 : 4)) return false;
  if (!isWorkerId(workerId)) return false;
  for (const line of lines) if (!isOutputLine(line)) return false;
  return true;
}

/**
 * The execute answer's header (mpd addition, issue 14) by which a worker says that the
 * execution's output is complete and empty (value {@link OUTPUT_NONE}): its module ended, wrote
 * no line, and no output batch was or will be sent for it, not even the `final` one. The
 * orchestrator closes that execution's log as if an empty `final` batch had come. A worker sends
 * it only to a request carrying {@link ACCEPT_OUTPUT_HEADER}; otherwise it sends its final batch.
 */
export const OUTPUT_HEADER = 'mpd-output';
/** The execute request's header by which the orchestrator says it reads {@link OUTPUT_HEADER} (value {@link OUTPUT_NONE}). */
export const ACCEPT_OUTPUT_HEADER = 'mpd-accept-output';
/** The value of {@link OUTPUT_HEADER} and {@link ACCEPT_OUTPUT_HEADER}. */
export const OUTPUT_NONE = 'none';
