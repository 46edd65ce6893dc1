import { createHash, type Hash, hash as hashOnce } from 'node:crypto';
import type { ExecuteModuleBody } from './execution.js';

/**
 * The SHA-256 (hex) of what an execute request asks the worker to do, in a canonical form: the
 * module (`moduleTypeName`), its parameters (`serializedModule`, as sent), the dependency results,
 * the environment variables and which of them are secret (names and values, in name order), the
 * working directory and the timeout (`timeoutMs`: the body's `timeout` parsed once by the
 * caller, so `01:00:00` and `1:00:00` are one; the body's `timeout` text is not read). The
 * `executionId` and `timestamp` are left out: a re-sent request (the orchestrator's re-sends,
 * whose timestamp may differ) has the same fingerprint, and one that names another module or
 * other inputs under a known `executionId` does not (409 `ExecutionIdConflict`, never joined).
 *
 * Each text goes into the hash with its length before it, so no two requests share a stream of
 * bytes (`{"a":"bc"}` and `{"ab":"c"}` differ). Results are hashed as they arrived, without a
 * copy: about 1 s per GB.
 */
export function requestFingerprint(body: ExecuteModuleBody, timeoutMs: number | undefined): string {
  // The small texts are joined and hashed in one update (one call per text cost ~15 updates per
  // request on the dispatch hot path, issue 14); a large one goes in on its own, uncopied. The
  // bytes hashed, so the fingerprint, are the same. Without a large text (almost every request)
  // the joined text is hashed by one-shot `crypto.hash`, without a `Hash` object: 0.20 µs of CPU
  // against 0.87 µs for the object, its update and its digest (a 60-character text, warm, 20,000
  // calls; more while the worker's code is not optimised yet: issue 14).
  const input = new FingerprintInput();
  input.text(body.moduleTypeName);
  input.text(body.serializedModule);
  input.entries(body.dependencyResults);
  input.entries(body.environmentVariables);
  const given = body.secretEnvironmentVariables;
  const secrets = given === undefined || given.length === 0 ? NO_SECRETS : [...new Set(given)].sort();
  input.text(String(secrets.length));
  for (const name of secrets) input.text(name);
  input.text(body.workingDirectory ?? '');
  input.text(timeoutMs === undefined ? '' : String(timeoutMs));
  return input.digest();
}

/**
 * The bytes {@link requestFingerprint} hashes, as they are given: one object with its methods,
 * where two closures were made per request (issue 14, round P); the same bytes in the same order.
 */
class FingerprintInput {
  #hash: Hash | undefined;
  #joined = '';

  /** `value`, its length before it. */
  text(value: string): void {
    if (value.length < LARGE_TEXT) {
      this.#joined += `${value.length}:${value}`;
      return;
    }
    this.#hash ??= createHash('sha256');
    this.#hash.update(`${this.#joined}${value.length}:`);
    this.#joined = '';
    this.#hash.update(value);
  }

  /** `record`'s size, then each name and value, in name order. */
  entries(record: Record<string, string>): void {
    const names = Object.keys(record).sort();
    this.text(String(names.length));
    for (const name of names) {
      this.text(name);
      this.text(record[name]!);
    }
  }

  /** The SHA-256 (hex) of every text given. */
  digest(): string {
    if (this.#hash === undefined) return hashOnce('sha256', this.#joined, 'hex');
    this.#hash.update(this.#joined);
    return this.#hash.digest('hex');
  }
}

/** No secret variables: the same `0` hashed as for an empty set, without making one per request. */
const NO_SECRETS: readonly string[] = [];

/** A text this long (UTF-16 units) is hashed on its own rather than copied into the joined text. */
const LARGE_TEXT = 16 * 1024;
