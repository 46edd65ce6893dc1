/**
 * Large results by reference (issue 13): a module result whose JSON text is over the worker's
 * `inlineResultBytes` (`--inline-result-size`) is stored as a blob in the orchestrator's
 * artifact store and the execute answer's `serializedResult` is a reference instead,
 * `{"$mpdRef":{"sha256":"…","size":…}}` (still JSON text: the spec's shapes stay). The
 * orchestrator keeps that reference in its report and passes it on in `dependencyResults`; a
 * dependant's worker fetches the blob (through its cache) and gives the module the value.
 */
import { readFile, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { describeBytes, type ExecuteModuleFailure, type ExecuteModuleSuccess } from '@mpd/contract';
import { LIMITS } from '@mpd/contract/limits';
import type { AnyModule, JsonValue } from '@mpd/pipeline';
import { ExecutionCancelledError, WorkerError } from '../errors.js';
import {
  beginExecution,
  type Execution,
  type ExecutionOptions,
  type ExecutionOutcome,
  type ExecutionRequest,
  type ModuleEnd,
  type WorkerArtifacts,
} from './execution.js';
import { ExecutionStop } from './execution-stop.js';
import { resultTooLargeError } from './result-limits.js';
import { type OpenedHostFile, openHostFile, scratchRealPath } from './scratch-file.js';
import type { ThrownDescription } from './values-as-text.js';
import { goesByReference, RESULT_REF_KEY } from './result-file.js';
import { DEFAULT_INLINE_RESULT_BYTES, DEFAULT_WORKER_MAX_RESULT_BYTES } from '../worker-defaults.js';

export { goesByReference, RESULT_REF_KEY } from './result-file.js';

// The worker's default `--inline-result-size` and `--max-result-size`: worker-defaults.ts.
export { DEFAULT_INLINE_RESULT_BYTES, DEFAULT_WORKER_MAX_RESULT_BYTES };

/** A stored result: its blob's SHA-256 and its size in bytes (of its JSON text, UTF-8). */
export interface ResultRef {
  sha256: string;
  size: number;
}

/** The JSON text of a reference to `ref`. */
export function resultRefText(ref: ResultRef): string {
  return JSON.stringify({ [RESULT_REF_KEY]: { sha256: ref.sha256, size: ref.size } });
}

/** The reference `value` is (exactly `{"$mpdRef":{"sha256":…,"size":…}}`, nothing more), or undefined. */
export function asResultRef(value: JsonValue | undefined): ResultRef | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  // Most results are no reference: refused without an array of their keys (issue 14, round Z).
  if (!Object.hasOwn(value, RESULT_REF_KEY)) return undefined;
  const keys = Object.keys(value);
  if (keys.length !== 1 || keys[0] !== RESULT_REF_KEY) return undefined;
  const ref = value[RESULT_REF_KEY];
  if (typeof ref !== 'object' || ref === null || Array.isArray(ref)) return undefined;
  const { sha256, size } = ref as Record<string, unknown>;
  if (Object.keys(ref).length !== 2) return undefined;
  if (typeof sha256 !== 'string' || !LIMITS.artifact.sha256.pattern.test(sha256)) return undefined;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return undefined;
  return { sha256, size };
}

/** A result could not be stored, or a dependency's could not be fetched (`exceptionType` `ResultReferenceError`). */
export class ResultReferenceError extends WorkerError {
  override readonly name = 'ResultReferenceError';
}

/**
 * Stores result text `text` of module `module` as a blob (its UTF-8 bytes, through
 * `transport.putBytes`: hashed from memory and uploaded from a file of the worker's own that no
 * module host is given, kept in the cache); answers its reference's text. Round V (V2): the text
 * was written into the hosts' scratch directory and uploaded by that path, where a module could
 * swap in another file (a link to a file of the worker's) before it was read: the stored result
 * was then not the module's.
 * @throws an Error when the transport cannot store bytes (no `putBytes`), or its upload's error
 */
export async function storeResult(text: string, artifacts: WorkerArtifacts, module: string): Promise<string> {
  const { transport } = artifacts;
  if (transport.putBytes === undefined) throw new Error("this worker's artifact transport cannot store a result");
  return resultRefText(await transport.putBytes(Buffer.from(text, 'utf8'), { module, result: module }));
}

/**
 * The end of a module that ran in a module host and returned a result that goes by reference,
 * with that result stored (its end then names the reference's text): from the file the host
 * wrote it to (`resultFile` of its `done`, whose path `fromHostProblem` checked) — opened once
 * and checked on its handle, exactly the bytes checked copied from that handle to a file of the
 * worker's and uploaded from it (`transport.putOpened`, required; see `scratch-file.ts`): the
 * worker's main thread never parses the text — and removed whatever happens (never throwing);
 * or from its text (a host's inline `resultText` over the size, which the worker's own hosts
 * never send: stored as for `isolation: 'none'`).
 *
 * The file must be a regular file of one link (not a symbolic or hard link to a file elsewhere,
 * nor a FIFO or a directory, which a module's code could have put in its place) within
 * `maxResultBytes` (the worker's `--max-result-size`, checked on the handle's size before the
 * upload, with `checkedResult`'s message; the host checked the text already); a file that
 * changes size while it is copied is not stored.
 * @returns the end: a success naming the reference; or a failure: `ResultLimitError` over the
 *   limit, `ResultReferenceError` when it is not such a file or could not be stored (the message
 *   `isolation: 'none'` gives)
 */
export async function storeHostResult(
  module: string,
  result: { text: string } | { file: string },
  artifacts: WorkerArtifacts,
  maxResultBytes: number,
): Promise<ModuleEnd> {
  if ('text' in result) {
    try {
      return { ok: true, value: await storeResult(result.text, artifacts, module) };
    } catch (error) {
      return { ok: false, thrown: notStored(module, Buffer.byteLength(result.text), error) };
    }
  }
  const { file } = result;
  let opened: OpenedHostFile | undefined;
  try {
    const found = await openHostFile(file, scratchRealPath(artifacts.scratchDir));
    if (found === 'not-own-file') {
      return {
        ok: false,
        thrown: {
          type: 'ResultReferenceError',
          message: `Module '${module}' ended with a result file that is not a regular file of its own (a link, or another file linked in its place): not uploaded`,
          stack: null,
        },
      };
    }
    opened = found;
    if (found.size > maxResultBytes)
      return { ok: false, error: resultTooLargeError(module, found.size, maxResultBytes) };
    try {
      // The bytes checked, copied from the handle where no host is given a directory (round T,
      // review U1): the host's path is never opened again. A transport without `putOpened` stores
      // none (round V, V2: its fallback copied into the scratch directory, where a module can swap it).
      const { putOpened } = artifacts.transport;
      if (putOpened === undefined) throw new Error("this worker's artifact transport cannot store a result");
      const subject = { module, result: module };
      return {
        ok: true,
        value: resultRefText(await putOpened.call(artifacts.transport, found.handle, found.size, undefined, subject)),
      };
    } catch (error) {
      return { ok: false, thrown: notStored(module, found.size, error) };
    }
  } catch (error) {
    return { ok: false, thrown: notStored(module, undefined, error) };
  } finally {
    await opened?.handle.close().catch(() => undefined);
    await removeHostFile(file);
  }
}

/**
 * Removes what a host left at `path` (its result file; a directory it made there, if empty),
 * never throwing: a host decides what is there, and a failure to remove it must not end the
 * execution without an answer (`EISDIR` from `rm` did, round R's review s2).
 */
async function removeHostFile(path: string): Promise<void> {
  await unlink(path).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code === 'EISDIR' || error.code === 'EPERM') await rmdir(path).catch(() => undefined);
  });
}

/** What a module's failure says when its result, `bytes` as JSON (unknown: undefined), could not be stored. */
function notStored(module: string, bytes: number | undefined, error: unknown): ThrownDescription {
  const size = bytes === undefined ? '' : ` of ${describeBytes(bytes)} as JSON`;
  return {
    type: 'ResultReferenceError',
    message: `Module '${module}' returned a result${size}, over the worker's --inline-result-size, and it could not be stored in the artifact store: ${(error as Error).message}`,
    stack: null,
  };
}

/**
 * A dependency's result passed by reference that a module host reads itself: the path of a file
 * holding its JSON text (a link of the worker's own to the cached blob, removed once the
 * execution ended) and the blob's SHA-256 (named in the error when it is not JSON).
 */
export interface ResultFile {
  path: string;
  sha256: string;
}

/**
 * The references of `results` fetched through the worker's cache (once per worker), each
 * checked out as a file of the caller's own; none parsed here. What they take is bounded: their
 * sizes together at most `maxBytes` (the worker's `--max-result-size`), checked on the references
 * before anything is fetched and on each blob as it is fetched. `release()` removes the files.
 * `module`: the dependant's name, for the transfers' log lines.
 * @throws ResultReferenceError naming the dependency, its size and the limit, or why it could not be fetched (the files fetched so far removed)
 */
export async function checkOutReferences(
  results: Record<string, JsonValue>,
  transport: WorkerArtifacts['transport'],
  maxBytes: number,
  module: string,
): Promise<{ files: Record<string, ResultFile>; release: () => Promise<void> }> {
  const refs = Object.entries(results).flatMap(([name, value]) => {
    const ref = asResultRef(value);
    return ref ? [{ name, ref }] : [];
  });
  const files: Record<string, ResultFile> = {};
  const release = async (): Promise<void> => {
    await Promise.all(Object.values(files).map(({ path }) => rm(path, { force: true })));
  };
  if (refs.length === 0) return { files, release };
  const limit = (total: number, what: string): void => {
    if (total > maxBytes) {
      throw new ResultReferenceError(
        'ResultTooLarge',
        `${what} ${describeBytes(total)}, over the ${describeBytes(maxBytes)} this worker takes in (its --max-result-size, maxResultBytes); raise it on this worker, or return less`,
      );
    }
  };
  const list = refs.map(({ name, ref }) => `'${name}' ${describeBytes(ref.size)}`).join(', ');
  try {
    limit(
      refs.reduce((sum, { ref }) => sum + ref.size, 0),
      `The results of this module's dependencies passed by reference (${list}) are together`,
    );
    let total = 0;
    for (const { name, ref } of refs) {
      try {
        const { path } = await transport.checkOut(ref.sha256, { module, result: name });
        files[name] = { path, sha256: ref.sha256 };
        total += (await stat(path)).size;
        limit(total, `The results of this module's dependencies passed by reference are together (at '${name}')`);
      } catch (error) {
        if (error instanceof ResultReferenceError) throw error;
        throw new ResultReferenceError(
          'ResultReferenceFailed',
          `The result of dependency '${name}' (stored by reference, blob ${ref.sha256}) could not be fetched: ${(error as Error).message}`,
          { cause: error },
        );
      }
    }
  } catch (error) {
    await release();
    throw error;
  }
  return { files, release };
}

/** The message of a dependency's result file that is not JSON (`error`: what `JSON.parse` threw). */
export function notJsonMessage(name: string, sha256: string, error: unknown): string {
  return `The result of dependency '${name}' (blob ${sha256}) is not JSON: ${(error as Error).message}`;
}

/**
 * `results` with every reference replaced by the value it names: fetched as
 * {@link checkOutReferences} does (bounded the same), read and parsed here, on the caller's
 * thread. For a module that runs in this process (`isolation: 'none'`); a module host reads the
 * files itself (see {@link withResultReferences}).
 * @throws ResultReferenceError naming the dependency, its size and the limit, why it could not be fetched, or that it is not JSON
 */
export async function resolveReferences(
  results: Record<string, JsonValue>,
  transport: WorkerArtifacts['transport'],
  maxBytes: number,
  module: string,
): Promise<Record<string, JsonValue>> {
  const { files, release } = await checkOutReferences(results, transport, maxBytes, module);
  const resolved = { ...results };
  try {
    for (const [name, { path, sha256 }] of Object.entries(files)) {
      const text = await readFile(path, 'utf8');
      try {
        resolved[name] = JSON.parse(text) as JsonValue;
      } catch (error) {
        throw new ResultReferenceError('ResultReferenceFailed', notJsonMessage(name, sha256, error));
      }
    }
  } finally {
    await release();
  }
  return resolved;
}

/** Whether any of `dependencyResults` is a reference ({@link asResultRef}). */
export function hasReference(dependencyResults: Readonly<Record<string, JsonValue>>): boolean {
  // An index loop: no closure per call (a for-in with hasOwn was slower, `bench/own-code.ts`).
  const values = Object.values(dependencyResults);
  for (let i = 0; i < values.length; i++) if (asResultRef(values[i]) !== undefined) return true;
  return false;
}

/** What {@link withResultReferences} takes besides the execution's options. */
export interface ResultReferenceOptions extends ExecutionOptions {
  /** Results larger than this (JSON text, UTF-8 bytes) go by reference (`--inline-result-size`). */
  inlineResultBytes: number;
}

/**
 * An execution with references around it: its dependencies' references are fetched first (a
 * failure to fetch one fails the module before it runs), and a result over `inlineResultBytes`
 * is stored and answered as a reference (a failure to store it fails the module): here for
 * `isolation: 'none'`, by the hosted execution for a module host, which writes such a result to
 * a file the worker uploads without reading it ({@link storeHostResult}). The slot stays
 * taken until the result is stored. Without an artifact store (no orchestrator) `start` runs as
 * it is.
 *
 * `readsFiles` false (`isolation: 'none'`): `start` gets the request with the references
 * replaced by their values, read and parsed here. `readsFiles` true (a module host runs it):
 * `start` gets the request as it came (the references in it) and each fetched reference as a
 * file ({@link ResultFile}, kept until the execution stopped), which the host reads and parses
 * on its own main thread: the worker's main thread never holds a large result's text or value.
 * Its event loop renews the worker's lease and every host's (see `module-host-lease.ts`), and a
 * 70 MB result parsed, serialised again and written on a host's channel stalled it for 3.8 s at
 * load 12 (docs/round-p/q2.md), long enough at load 23 for a host's lease to end while it ran.
 * @param readsFiles @default false
 */
export function withResultReferences(
  module: AnyModule,
  request: ExecutionRequest,
  options: ResultReferenceOptions,
  start: (request: ExecutionRequest, resultFiles?: Record<string, ResultFile>) => Execution,
  readsFiles = false,
): Execution {
  const artifacts = options.artifacts;
  if (!artifacts) return start(request);
  // Nothing to fetch (every module of a wide or chain run of small results): a module host's
  // started at once, without the fetch's promises, race and async step (issue 14, round H), and
  // without a closure or an array of the dependencies' values made first (round Z).
  const fetches = hasReference(request.dependencyResults);
  if (!fetches && readsFiles) return start(request);
  // A module host's result that goes by reference is stored by its hosted execution (from the file the host wrote).
  const storedIfLarge = (answer: ExecutionOutcome): ExecutionOutcome | Promise<ExecutionOutcome> =>
    readsFiles || answer.status !== 200 || !goesByReference(answer.body.serializedResult, options.inlineResultBytes)
      ? answer
      : storeLargeResult(module, answer.body, artifacts);
  if (!fetches) {
    const inner = start(request);
    const outcome = inner.outcome.then(storedIfLarge);
    return { outcome, stopped: outcome.then(() => inner.stopped), cancel: (reason) => inner.cancel(reason) };
  }
  let inner: Execution | undefined;
  // A cancel while the references are fetched answers at once (the download goes on into the cache).
  let reject!: (error: ExecutionCancelledError) => void;
  let cancelledBy: ExecutionCancelledError | undefined;
  const cancelled = new Promise<never>((_, rejectWith) => (reject = rejectWith));
  cancelled.catch(() => undefined);
  const failBefore = (error: unknown): ExecutionOutcome => {
    const frame = beginExecution(module, request, options, new ExecutionStop());
    return frame.end({ ok: false, error });
  };
  /** Removes the files of the references checked out for the host (none: nothing). */
  let release: (() => Promise<void>) | undefined;
  const outcome = (async (): Promise<ExecutionOutcome> => {
    if (readsFiles) {
      let files: Record<string, ResultFile>;
      const fetching = checkOutReferences(
        request.dependencyResults,
        artifacts.transport,
        options.maxResultBytes,
        module.name,
      );
      // Fetched after a cancel: its files are not wanted.
      void fetching.then(
        (checkedOut) => (cancelledBy ? checkedOut.release() : undefined),
        () => undefined,
      );
      try {
        const checkedOut = await Promise.race([fetching, cancelled]);
        release = checkedOut.release;
        files = checkedOut.files;
      } catch (error) {
        return failBefore(error);
      }
      // Cancelled as the fetch ended (before the race saw it): the module never runs.
      if (cancelledBy) return failBefore(cancelledBy);
      inner = start(request, files);
      return storedIfLarge(await inner.outcome);
    }
    let resolved: ExecutionRequest;
    try {
      const fetching = resolveReferences(
        request.dependencyResults,
        artifacts.transport,
        options.maxResultBytes,
        module.name,
      );
      fetching.catch(() => undefined);
      resolved = { ...request, dependencyResults: await Promise.race([fetching, cancelled]) };
    } catch (error) {
      return failBefore(error);
    }
    // Cancelled as the fetch ended (before the race saw it): the module never runs.
    if (cancelledBy) return failBefore(cancelledBy);
    inner = start(resolved);
    return storedIfLarge(await inner.outcome);
  })();
  return {
    outcome,
    // The files go once the host is done with them (its module answered, or its group stopped).
    stopped: outcome.then(async () => {
      try {
        await inner?.stopped;
      } finally {
        await release?.();
      }
    }),
    cancel: (reason) => {
      if (inner) inner.cancel(reason);
      else if (!cancelledBy) {
        cancelledBy = new ExecutionCancelledError(`Execution cancelled${reason ? `: ${reason}` : ''}`);
        reject(cancelledBy);
      }
    },
  };
}

/**
 * `answer` (a success whose result goes by reference) with its result stored and answered as a
 * reference; a failure naming the store's error when it could not be stored.
 */
async function storeLargeResult(
  module: AnyModule,
  answer: ExecuteModuleSuccess,
  artifacts: WorkerArtifacts,
): Promise<ExecutionOutcome> {
  try {
    return {
      status: 200,
      body: { ...answer, serializedResult: await storeResult(answer.serializedResult, artifacts, module.name) },
    };
  } catch (error) {
    const body: ExecuteModuleFailure = {
      executionId: answer.executionId,
      duration: answer.duration,
      startTime: answer.startTime,
      endTime: answer.endTime,
      workerId: answer.workerId,
      success: false,
      errorMessage: notStored(module.name, Buffer.byteLength(answer.serializedResult), error).message,
      exceptionType: 'ResultReferenceError',
      stackTrace: null,
      failureKind: 'Error',
    };
    return { status: 500, body };
  }
}
