/**
 * The CLI's `--timings FILE`: how long each module of a pipeline took in earlier runs, read
 * before a run (as the scheduler's duration hints) and updated after it. CI keeps the file
 * between runs as a cache, like a test-splitting timings file.
 */
import { readFile } from 'node:fs/promises';
import { writeStateFile } from '@mpd/server-kit';
import { z } from 'zod';
import type { RunResult } from '../runner/index.js';

export const timingsFileSchema = z.object({
  version: z.literal(1),
  pipeline: z.string(),
  updatedAt: z.string(),
  /** Module name → typical duration in ms (smoothed over runs). */
  modules: z.record(z.string(), z.number().finite().nonnegative()),
});
export type TimingsFile = z.infer<typeof timingsFileSchema>;

/** How much a new run counts against what the file says: recent runs count most, one slow run does not take over. */
const NEW_RUN_WEIGHT = 0.5;

export type TimingsRead =
  | { kind: 'read'; timings: TimingsFile }
  | { kind: 'missing' }
  /** The file is for another pipeline: its durations are not used, and the run replaces it. */
  | { kind: 'other-pipeline'; pipeline: string }
  /** Unreadable, not JSON or not a timings file: not used (a broken cache must not fail a run), replaced after the run. */
  | { kind: 'invalid'; reason: string };

export async function readTimingsFile(file: string, pipeline: string): Promise<TimingsRead> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    return { kind: 'invalid', reason: (error as Error).message };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { kind: 'invalid', reason: `not JSON: ${(error as Error).message}` };
  }
  const parsed = timingsFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { kind: 'invalid', reason: `${issue.path.join('.') || '(root)'}: ${issue.message}` };
  }
  if (parsed.data.pipeline !== pipeline) return { kind: 'other-pipeline', pipeline: parsed.data.pipeline };
  return { kind: 'read', timings: parsed.data };
}

/**
 * The timings after `result`: each module that succeeded moves halfway from its old duration
 * towards the new one (or takes it, when new); the others keep what they had.
 */
export function updatedTimings(previous: TimingsFile | undefined, result: RunResult): TimingsFile {
  const modules: Record<string, number> = { ...previous?.modules };
  for (const module of result.modules) {
    if (module.status !== 'Successful' || module.durationMs === undefined) continue;
    const old = modules[module.name];
    modules[module.name] =
      old === undefined ? module.durationMs : Math.round(old + NEW_RUN_WEIGHT * (module.durationMs - old));
  }
  return { version: 1, pipeline: result.pipeline, updatedAt: result.endTime, modules };
}

/** Writes the file whole or not at all (see `writeStateFile`). */
export async function writeTimingsFile(file: string, timings: TimingsFile): Promise<void> {
  await writeStateFile(file, `${JSON.stringify(timings, null, 2)}\n`);
}
