import { z } from 'zod';
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
