/**
 * Defaults and limits of the wire that code outside the contract also needs, in one place: the
 * contract's schemas take their bounds from {@link LIMITS}, `defineModule`/`definePipeline` check
 * definitions against it, and both servers and the client take their defaults from here. This
 * file imports nothing, so `@mpd/pipeline` can take what it needs from here
 * (`@mpd/contract/limits`) without loading zod or ts-rest.
 */

/**
 * A module's timeout when none is given, in ms (30 minutes): the worker's for an execute
 * request without `timeout`, the client's for the deadline of such a call, and a pipeline's
 * when its `defaults.timeoutMs` is not set.
 */
export const DEFAULT_MODULE_TIMEOUT_MS = 30 * 60 * 1000;

/** Where each server serves its OpenAPI document (`GET`, no token). */
export const OPENAPI_PATH = '/api/openapi.json';

/** What a masked secret is replaced with in everything that leaves a process (logs, errors, reports). */
export const MASK = '***';

/**
 * The bounds of what crosses a process boundary, one entry per kind of value (lengths in
 * characters). The spec's example bodies are within every one of them (test-kit's
 * `SPEC_EXAMPLES`; the contract's tests check it); the README's "Limits" section lists each
 * with where it is enforced and what a user sees.
 */
export const LIMITS = {
  /**
   * Ids that travel in bodies only (execution ids, incarnations): printable ASCII without spaces.
   * Worker ids, which also travel as path parameters, take {@link LIMITS.workerId}.
   */
  identifier: {
    maxLength: 256,
    pattern: /^[\x21-\x7e]+$/,
    alphabet: 'printable ASCII without spaces',
  },
  /**
   * Worker ids: they travel as path parameters (`/api/workers/{workerId}`), so they are RFC 3986's
   * unreserved characters only (letters, digits, `.`, `_`, `~`, `-`): never changed by percent-encoding,
   * never a `/`, `?`, `#` or `%` that a URL reads as something else, and never the dot-segment `.` or
   * `..` (the first character is a letter or digit). One id names one worker wherever it is written.
   * The spec's `worker-machine1-abc123` and the default `worker-<hostname>-<random>` are such ids.
   */
  workerId: {
    maxLength: 128,
    pattern: /^[A-Za-z0-9][A-Za-z0-9._~-]*$/,
    alphabet: 'letters, digits and . _ ~ -, starting with a letter or digit',
  },
  /**
   * Names a worker advertises: its OS, tools and tags, its pipeline's name and the names of the
   * pipeline's modules; and, at definition time, a pipeline's name, a module's category, tags
   * and requirements.
   */
  name: { maxLength: 128 },
  /**
   * A module's name as `defineModule` takes it: it is advertised by workers (a {@link LIMITS.name}),
   * sent as `moduleTypeName`, and part of every execution id (`<run id>.<module>.<attempt>`, an
   * {@link LIMITS.identifier}), so it must fit all three.
   */
  moduleName: {
    maxLength: 128,
    pattern: /^[A-Za-z0-9][A-Za-z0-9._:@/-]*$/,
    alphabet: 'letters, digits and . _ : @ / -, starting with a letter or digit',
  },
  /**
   * `moduleTypeName` and the keys of `dependencyResults` on the wire: any text (the spec's
   * example is a .NET assembly-qualified type name, `MyApp.Modules.BuildModule, MyApp`).
   */
  moduleTypeName: { maxLength: 512 },
  /** A pipeline's fingerprint (`sha256:` and 64 hex digits from `definePipeline`). */
  fingerprint: { maxLength: 128 },
  /** A worker's credential, issued by the orchestrator. */
  credential: { minLength: 16, maxLength: 256 },
  /**
   * A registration's `Idempotency-Key` header (the worker process's registration key, README
   * "A registration whose answer was lost"): 32 to 255 of base64's and base64url's characters
   * (`A-Z a-z 0-9 + / = - _`), as a Structured Field string (`"…"`, what the IETF draft
   * draft-ietf-httpapi-idempotency-key-header specifies) or bare (what Stripe takes). 32
   * characters leave room for at least 128 random bits in any of those encodings but hex; a
   * worker sends 32 random bytes in base64url (43 characters).
   */
  idempotencyKey: {
    minLength: 32,
    maxLength: 255,
    pattern: /^(?:"[A-Za-z0-9+/=_-]{32,255}"|[A-Za-z0-9+/=_-]{32,255})$/,
    alphabet: 'base64 or base64url characters (A-Z a-z 0-9 + / = - _)',
  },
  /** A worker's endpoint URL. */
  url: { maxLength: 2_048 },
  /** The name of an environment variable sent to a module (secret or not). */
  environmentName: { maxLength: 1_024 },
  /** A module's working directory. */
  path: { maxLength: 4_096 },
  /** A cancel's reason. */
  reason: { maxLength: 4_096 },
  /**
   * What a worker may advertise of its pipeline: at most `maxModules` modules, whose names
   * together take at most `maxNameCharacters` characters (10,000 modules averaging 32). The
   * orchestrator keeps one copy of each distinct pipeline its workers advertise (at most
   * `--max-pipelines` of them), so this bounds the memory each one pins: about 0.7 MB at the
   * limit, where 10,000 names of 128 characters pinned 2.3 MB per registration (issue 11).
   */
  pipeline: { maxModules: 10_000, maxNameCharacters: 320_000 },
  /** A worker's capabilities: tools and tags it advertises, and its slots. */
  capabilities: { maxListItems: 256, maxSlots: 1_024 },
  /** Secret environment variable names in one execute request. */
  execute: { maxSecretNames: 1_024 },
  /**
   * How deeply a module's result (and its parameters) may nest arrays and objects: a quarter of
   * what V8's recursive `JSON.stringify` manages from an empty stack (about 4,170 levels), about
   * half of what `structuredClone` and Node's 'advanced' IPC serialisation manage (about 1,950),
   * so every step a result passes (the worker's serialisation, the orchestrator's report, a
   * dependant's own code) has room to spare. Jackson's default `maxNestingDepth` is the same.
   */
  json: { maxDepth: 1_000 },
  /**
   * An error answer of either server: at most `maxIssues` field issues (the rest only counted,
   * in `omittedIssues`), each field name and message cut to `maxTextLength` characters, the
   * `errorMessage` to `maxMessageLength`, and the whole body at most `maxBytes` of JSON (issues
   * dropped from the end until it fits), however many problems a request has. A request with
   * 100,000 bad entries used to get an answer of 14 MB, and 1 M numbers one of 154 MB (issue 11);
   * ASP.NET Core's `MaxModelValidationErrors` (200) bounds the same thing.
   */
  errorAnswer: { maxIssues: 20, maxTextLength: 200, maxMessageLength: 1_000, maxBytes: 16 * 1_024 },
  // --- artifacts (issue 13, slice A) ---
  /**
   * The artifact store: blobs are named by their SHA-256 (64 lowercase hex digits, so a name is
   * never a path segment like `..`); artifacts by a name of letters, digits and `. _ -` (it names
   * the archive in logs and errors, never a path).
   */
  artifact: {
    sha256: { pattern: /^[0-9a-f]{64}$/, alphabet: '64 lowercase hex digits (a SHA-256)' },
    name: {
      maxLength: 128,
      pattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
      alphabet: 'letters, digits and . _ -, starting with a letter or digit',
    },
  },
  // --- Module output (issue 13, slice L) ---
  /**
   * A batch of a module's output lines (`POST /api/executions/{executionId}/output`): at most
   * `maxLinesPerBatch` lines, each at most `maxLineLength` characters (the worker splits a longer
   * line into pieces of that length, each a line of its own: nothing is cut away), and the worker
   * sends at most `maxBatchBytes` of JSON in one batch, under the orchestrator's default body
   * limit (1 MiB) with room to spare. Buildkite cuts a job's log line at 1 MiB; GitHub Actions
   * shows lines up to 64 KiB: 16,384 characters keep a long compiler line whole in most cases.
   */
  output: { maxLinesPerBatch: 1_000, maxLineLength: 16_384, maxBatchBytes: 512 * 1_024 },
} as const;

/** The characters of a pipeline's module names together: what {@link LIMITS}`.pipeline.maxNameCharacters` bounds. */
export function moduleNameCharacters(names: Iterable<string>): number {
  let characters = 0;
  for (const name of names) characters += name.length;
  return characters;
}

/**
 * The largest module result accepted by default, as JSON text in UTF-8 bytes: 16 MiB (the
 * `--max-result-size` of both CLIs, `maxResultBytes` of both libraries). Results are data passed
 * between modules, not artifacts: the orchestrator holds each one for the whole run and sends it
 * in the execute request of every dependant. At 16 MiB, three dependencies at the limit still fit
 * a worker's default body limit ({@link DEFAULT_WORKER_BODY_LIMIT}, 100 MiB) even when every
 * character needs escaping ({@link executeAnswerLimit}); it is MongoDB's document limit, and eight
 * times Temporal's payload limit (2 MB).
 */
export const DEFAULT_MAX_RESULT_BYTES = 16 * 1024 * 1024;

/** The orchestrator's default `--body-limit` (registrations, heartbeats): `1mb`. */
export const DEFAULT_ORCHESTRATOR_BODY_LIMIT = '1mb';

/**
 * A worker's default `--body-limit` (execute requests carry their dependencies' results):
 * `100mb`, 100 MiB as express reads it. The orchestrator assumes it for a worker that does not
 * advertise its own (`capabilities.bodyLimitBytes`).
 */
export const DEFAULT_WORKER_BODY_LIMIT = '100mb';

/** {@link DEFAULT_WORKER_BODY_LIMIT} in bytes. */
export const DEFAULT_WORKER_BODY_LIMIT_BYTES = 100 * 1024 * 1024;

/** Room for everything an execute answer holds besides the result: ids, times, the envelope's keys (64 KiB). */
export const EXECUTE_ENVELOPE_BYTES = 64 * 1024;

/**
 * The largest execute answer that can carry a result of `maxResultBytes`: the result's JSON
 * text travels as a JSON string, in which each `"` and `\` takes two bytes (`JSON.stringify`
 * leaves no other character needing an escape in JSON text), plus {@link EXECUTE_ENVELOPE_BYTES}.
 * The orchestrator's client reads no answer past it.
 */
export function executeAnswerLimit(maxResultBytes: number): number {
  return 2 * maxResultBytes + EXECUTE_ENVELOPE_BYTES;
}

/**
 * How deeply the JSON text `text` nests arrays and objects (`1` is 0, `[]` 1, `[{"a":[]}]` 3),
 * found by scanning the text, never by recursion: text from the wire may nest to any depth.
 * Text that is not JSON gives a number without meaning.
 */
export function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code === 0x22 /* " */) {
      index = endOfString(text, index);
    } else if (code === 0x5b /* [ */ || code === 0x7b /* { */) {
      if (++depth > deepest) deepest = depth;
    } else if (code === 0x5d /* ] */ || code === 0x7d /* } */) {
      depth--;
    }
  }
  return deepest;
}

/** The index of the `"` closing the string that opens at `start` (the text's end when none does). */
function endOfString(text: string, start: number): number {
  let quote = text.indexOf('"', start + 1);
  while (quote !== -1) {
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === 0x5c /* \ */) backslashes++;
    if (backslashes % 2 === 0) return quote;
    quote = text.indexOf('"', quote + 1);
  }
  return text.length;
}

/** How a module's result breaks the limits (see {@link resultLimitProblem}). */
export interface ResultLimitProblem {
  /** `ResultTooLarge`: over the size limit; `ResultTooDeep`: nested past `LIMITS.json.maxDepth`. */
  code: 'ResultTooLarge' | 'ResultTooDeep';
  /**
   * A phrase for the callers' messages: `a result of 66.8 MiB (70,000,002 bytes) as JSON, over
   * the limit of 16 MiB (16,777,216 bytes)`, `a result nested 3,500 levels deep, over the limit
   * of 1,000 levels`.
   */
  phrase: string;
}

/**
 * What is wrong with a module's result, given as its JSON text, or undefined when it is within
 * `maxResultBytes` (UTF-8 bytes) and nested at most {@link LIMITS}`.json.maxDepth` deep.
 */
export function resultLimitProblem(serializedResult: string, maxResultBytes: number): ResultLimitProblem | undefined {
  // A string's UTF-8 bytes are at most three times its length (in UTF-16 units): most results need no count.
  if (serializedResult.length * 3 > maxResultBytes) {
    const bytes = Buffer.byteLength(serializedResult, 'utf8');
    if (bytes > maxResultBytes) {
      return {
        code: 'ResultTooLarge',
        phrase: `a result of ${describeBytes(bytes)} as JSON, over the limit of ${describeBytes(maxResultBytes)}`,
      };
    }
  }
  const depth = jsonDepth(serializedResult);
  const { maxDepth } = LIMITS.json;
  if (depth > maxDepth) {
    return {
      code: 'ResultTooDeep',
      phrase: `a result nested ${depth.toLocaleString('en-US')} levels deep, over the limit of ${maxDepth.toLocaleString('en-US')} levels`,
    };
  }
  return undefined;
}

/** A size for people: `16 MiB (16,777,216 bytes)`, `900 bytes`. */
export function describeBytes(bytes: number): string {
  const exact = `${bytes.toLocaleString('en-US')} bytes`;
  return bytes < 1024 ? exact : `${formatBytes(bytes)} (${exact})`;
}

/** A size in binary units, to one decimal where it has one: `16 MiB`, `66.8 MiB`, `512 KiB`, `900 B`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const rounded = Math.round(value * 10) / 10;
  return `${Number.isInteger(rounded) ? rounded : rounded.toFixed(1)} ${units[unit]}`;
}

// --- artifacts (issue 13, slice A) ---

/**
 * The largest blob the orchestrator's artifact store takes by default, in bytes: 2 GiB
 * (`--max-artifact-size`). A `PUT` declaring more is refused (413) before its body is read.
 * GitHub Actions' and Buildkite's artifact uploads take files of several GiB; 2 GiB keeps one
 * upload within a CI machine's spare disk.
 */
export const DEFAULT_MAX_ARTIFACT_BYTES = 2 * 1024 * 1024 * 1024;
