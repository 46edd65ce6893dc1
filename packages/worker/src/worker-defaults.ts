/**
 * The worker's constant defaults ({@link DEFAULT_WORKER_OPTIONS} and the sizes and bounds it is
 * made of), in a file that imports nothing but the contract's limits: the worker's CLI shows
 * them in `--help` and checks `--pack-stall` against them before it loads any server code
 * (round R). `worker-options.ts`, `executor/result-references.ts` and
 * `registration/output-shipper.ts` export them as before.
 */
import { DEFAULT_MODULE_TIMEOUT_MS, DEFAULT_WORKER_BODY_LIMIT } from '@mpd/contract/limits';
import type { WorkerOptions } from './worker-options.js';

/**
 * The worker's default `--inline-result-size`: 256 KiB. Below it a result travels in the
 * execute answer and in every dependant's request, held by the orchestrator for the run; above
 * it one upload and one cached download per worker cost less than carrying it through the
 * orchestrator's memory and every request (the figure; Temporal's gRPC payloads warn at
 * 256 KB too, and it is 1/64 of the orchestrator's 16 MiB `--max-result-size`).
 */
export const DEFAULT_INLINE_RESULT_BYTES = 256 * 1024;

/**
 * The worker's default `--max-result-size`: 128 MiB. A result above the inline size no longer
 * passes through the orchestrator, so this bounds the worker's memory instead: the module's
 * result as JSON text on the producer, and the referenced results a dependant takes in (their
 * sum) on the consumer, which parses them (a 70 MB result takes about 3 times that in V8).
 */
export const DEFAULT_WORKER_MAX_RESULT_BYTES = 128 * 1024 * 1024;

/**
 * The output one execution keeps in the worker's memory while it waits to be shipped, by default:
 * 1 MiB (about 10,000 lines of 100 characters from a command, counted as written: see
 * `CHUNK_OVERHEAD_BYTES` in registration/output-shipper.ts), the worker's `--output-buffer-size`.
 */
export const DEFAULT_OUTPUT_BUFFER_BYTES = 1024 * 1024;

/**
 * The output one execution keeps in its spill file once its buffer is full, by default: 64 MiB
 * (about 660,000 lines of 100 characters from a command: minutes of a loud build while the
 * orchestrator is unreachable), the worker's `--output-spill-size`.
 */
export const DEFAULT_OUTPUT_SPILL_BYTES = 64 * 1024 * 1024;

/** The worker's default artifact cache size: 5 GiB, room for a few builds' artifacts at the store's 2 GiB limit. */
export const DEFAULT_CACHE_BYTES = 5 * 1024 * 1024 * 1024;

/** The shortest {@link WorkerOptions.packStallMs} (ms): 1 s, as `--pack-stall`'s. */
export const PACK_STALL_MIN_MS = 1_000;
/** The longest {@link WorkerOptions.packStallMs} (ms): an hour, as `--pack-stall`'s. */
export const PACK_STALL_MAX_MS = 3_600_000;

/** The defaults of {@link WorkerOptions} that are constants (the others are read from the machine). */
export const DEFAULT_WORKER_OPTIONS = {
  port: 9000,
  host: '0.0.0.0',
  defaultTimeoutMs: DEFAULT_MODULE_TIMEOUT_MS,
  shutdownGraceMs: 30_000,
  bodyLimit: DEFAULT_WORKER_BODY_LIMIT,
  maxResultBytes: DEFAULT_WORKER_MAX_RESULT_BYTES,
  inlineResultBytes: DEFAULT_INLINE_RESULT_BYTES,
  validateResponses: false,
  initialBackoffMs: 500,
  maxBackoffMs: 30_000,
  completedRetentionMs: 10 * 60_000,
  killGraceMs: 10_000,
  open: false,
  cacheDir: '.mpd/artifact-cache',
  cacheMaxBytes: DEFAULT_CACHE_BYTES,
  packStallMs: 30_000,
  outputBufferBytes: DEFAULT_OUTPUT_BUFFER_BYTES,
  outputSpillBytes: DEFAULT_OUTPUT_SPILL_BYTES,
} as const satisfies WorkerOptions;
