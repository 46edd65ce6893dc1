import { DEFAULT_MAX_RESULT_BYTES } from '@mpd/contract/limits';
import type { RunPipelineOptions } from './run-options.js';

/**
 * The defaults of {@link RunPipelineOptions} that do not come from the pipeline. A file of its
 * own, importing nothing at run time but the contract's dependency-free `limits` entry, so that
 * the CLI takes its defaults from here without loading the worker client that run-options.ts
 * needs (about 70 ms of `mpd-orchestrator --help`).
 */
export const DEFAULT_RUN_OPTIONS = {
  maxLostAttempts: 3,
  workerWaitMs: 300_000,
  rescheduleIntervalMs: 1_000,
  timeoutMarginMs: 60_000,
  maxResultBytes: DEFAULT_MAX_RESULT_BYTES,
  outputGraceMs: 2_000,
  maxOutputWaitMs: 300_000,
} as const satisfies Partial<RunPipelineOptions>;
