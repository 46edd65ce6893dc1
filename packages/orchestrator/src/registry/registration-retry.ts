import { hash as digest, timingSafeEqual } from 'node:crypto';
import type { WorkerNodeRegistration } from '@mpd/contract';

/**
 * What the registry keeps of a registration that came with a registration key (the
 * `Idempotency-Key` header) and a `sequence`, to tell the same process's retry after a lost
 * answer from anything else (see `NodeRegistry.register`). Never the key itself: its SHA-256.
 */
export interface RetryRecord {
  /** SHA-256 of the registration key. */
  readonly keyDigest: Buffer;
  /** The greatest `sequence` the registry has served for this key under this id. */
  readonly sequence: number;
  /** SHA-256 of the registration's canonical form ({@link registrationDigest}). */
  readonly bodyDigest: Buffer;
}

/** A registration attempt's key, sequence and body, as {@link RetryRecord} keeps them. */
export function retryRecord(
  node: WorkerNodeRegistration,
  key: string | undefined,
  sequence: number | undefined,
): RetryRecord | undefined {
  if (key === undefined || sequence === undefined) return undefined;
  return { keyDigest: sha256(key), sequence, bodyDigest: registrationDigest(node) };
}

/**
 * Whether `attempt` is a retry of the registration `held` records: the same key (compared in
 * constant time, over the digests), the same registration, and a greater sequence. The caller
 * checks the rest (the same incarnation, the holder's credential never used).
 */
export function repeats(held: RetryRecord | undefined, attempt: RetryRecord | undefined): boolean {
  if (held === undefined || attempt === undefined) return false;
  // Both checked whatever the first says: the time taken tells nothing of which one failed.
  const sameKey = timingSafeEqual(held.keyDigest, attempt.keyDigest);
  const sameBody = timingSafeEqual(held.bodyDigest, attempt.bodyDigest);
  return sameKey && sameBody && attempt.sequence > held.sequence;
}

/** Whether two records carry the same key (constant time). */
export function sameKey(a: RetryRecord | undefined, b: RetryRecord | undefined): boolean {
  return a !== undefined && b !== undefined && timingSafeEqual(a.keyDigest, b.keyDigest);
}

/**
 * SHA-256 of what a registration registers, in a canonical form: the worker's id, endpoint,
 * capabilities and pipeline (objects with their keys sorted, an absent pipeline as `null`), so
 * that a retry repeats, and cannot change, what was registered. Left out: `lastHeartbeat`,
 * `status` (the orchestrator's own) and `currentLoad` (the process's load as of the attempt,
 * which it may report anew); the request's `timestamp`, `credential` and `sequence` are not part
 * of the node.
 */
export function registrationDigest(node: WorkerNodeRegistration): Buffer {
  const canonical = JSON.stringify(sorted([node.id, node.endpoint, node.capabilities, node.pipeline ?? null]));
  return sha256(canonical);
}

function sha256(text: string): Buffer {
  return digest('sha256', text, 'buffer');
}

/** `value` with every object's keys in sorted order (and `undefined` members left out, as JSON does). */
function sorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sorted);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const member = (value as Record<string, unknown>)[key];
    if (member !== undefined) out[key] = sorted(member);
  }
  return out;
}
