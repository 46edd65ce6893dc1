/**
 * The messages between the worker and a module host, over the host's channel (a pipe, one line
 * of JSON per message: see `host-channel.ts`). One execution at a time per host; every message of an execution names
 * its `executionId`, so that a late message of an earlier one is told apart.
 */
import type { JsonValue } from '@mpd/pipeline';
import type { Digest, FollowedBlob, TransferSubject } from '../artifacts/module-artifacts.js';
import type { ThrownDescription } from './values-as-text.js';

/** What the worker tells a host. */
export type ToHost =
  /**
   * First message: load this pipeline file. Whether it is still the worker's pipeline is checked
   * per module (`moduleDigest` of `execute`), not here: hashing the whole pipeline was most of
   * what a host's start cost per module of the pipeline (issue 14, docs/round-t/t6.md).
   */
  /**
   * `markNonce`: random, the worker's for this host; written in every end mark (see
   * {@link OUTPUT_END_MARK}). `readsToEnd`: the worker reads both of the host's pipes, so that it
   * has read them to where the host sent `done` once it handled that message (see
   * `ModuleHost.answerUnmarked`): the host may leave its end marks out (see `marked` in `done`). The worker's constants every execution on the host shares are
   * here, sent once rather than in each `execute` (issue 14).
   */
  | {
      type: 'init';
      sourceFile: string;
      killGraceMs: number;
      markNonce: string;
      readsToEnd: boolean;
      workerId: string;
      /** The largest result a module may return (UTF-8 bytes of its JSON): checked in the host, so an oversized one never crosses the host channel (fd 3). */
      maxResultBytes: number;
      /**
       * Where the host packs artifacts before the worker uploads them (beside the worker's
       * cache), and writes a result that goes by reference (see `inlineResultBytes`); null: the
       * worker has no orchestrator, so `ctx.artifacts` throws saying so, and every result goes
       * inline.
       */
      artifactScratchDir: string | null;
      /**
       * The worker's `--inline-result-size` (UTF-8 bytes of a result's JSON): a result over it (or
       * shaped like a reference: `goesByReference`) goes by reference. With an
       * `artifactScratchDir`, the host writes such a result to its execution's file there
       * (`resultFilePath`) and sends its path (`resultFile` of `done`), not its text: the worker
       * uploads the file (streamed, hashed off its main thread) and never reads the text, which
       * on its main thread (parsing a 70 MB `done` line, writing it out) stalled the leases it
       * renews for every host (docs/round-p/q2.md, docs/round-r/r2.md).
       */
      inlineResultBytes: number;
    }
  /** Run one module. */
  | {
      type: 'execute';
      executionId: string;
      moduleName: string;
      /**
       * The worker's `Pipeline.moduleDigest` of the module (`sha256:` and 64 hex digits): the
       * host runs the module only when its own pipeline's digest of it is the same; otherwise the
       * execution fails saying the pipeline file changed since the worker loaded it.
       */
      moduleDigest: string;
      params: JsonValue | undefined;
      results: Record<string, JsonValue>;
      /**
       * The dependencies whose results came by reference (in `results` still as references), each
       * a file holding its JSON text and the blob's SHA-256: the host reads and parses them before
       * the module runs, in place of the references (a file that is not JSON fails the module,
       * `ResultReferenceError`). The worker never parses them: its main thread renews the leases
       * (see `withResultReferences`). null: none.
       */
      resultFiles: Readonly<Record<string, { path: string; sha256: string }>> | null;
      env: Record<string, string>;
      workingDirectory: string;
      /**
       * When the worker's lease ends (ms on `monotonicNow()`'s clock), as the worker handed the
       * host out; null: it has none. The host holds it while the module runs; one that has already
       * ended kills the group before the module starts.
       */
      leaseEndsAt: number | null;
      /**
       * The execution's secret values (those the worker masks; none shorter than
       * `MIN_SECRET_LENGTH`): the host cuts a command's over-long line into pieces, which the
       * worker masks each alone, and never inside one of these. On the host channel (fd 3) only,
       * never in the environment, on a pipe or in a file.
       */
      secrets: readonly string[];
    }
  /**
   * Abort the module's signal with a `ModuleTimeoutError` (`timeout`) or an
   * `ExecutionCancelledError`: the worker has stopped the execution (its timeout, a cancel the
   * host stopped or did not answer in time) and stops the host's group next.
   */
  | { type: 'cancel'; executionId: string; reason: 'timeout' | 'cancel'; message: string }
  /**
   * A cancel the host decides (sent while the worker has not read the execution's `returned`):
   * unless the module's code has returned or threw (its `returned` sent, before this message was
   * read), the host aborts the module's signal with an `ExecutionCancelledError` (`message`) and
   * answers `stopped`; otherwise it does nothing, and its `done` decides (the module's outcome
   * stands, as for a cancel the worker got after it read `returned`). So a cancel that crosses
   * `returned` on the channel no longer turns a completed module into Cancelled, run again: its
   * side effects twice (round V, V1). The module's timeout is asked the same way (`reason`
   * `timeout`: the signal aborted with a `ModuleTimeoutError`), so that one crossing `returned`
   * is not answered TimedOut and run again by its retry policy (round X, X5). The worker waits
   * for the verdict its kill grace at most.
   */
  | { type: 'cancel-request'; executionId: string; reason: 'timeout' | 'cancel'; message: string }
  /** The answer to an {@link ArtifactCall}. */
  | ({ type: 'artifact-answer'; callId: number } & (
      { ok: true; value: Digest | { path: string } | FollowedBlob } | { ok: false; message: string }
    ))
  /**
   * How a followed blob's download goes (an {@link ArtifactCall} `follow`, answered once its file
   * exists): `written` bytes are in its file; then `ended`, with `message` when it failed. May
   * arrive before the call's answer.
   */
  | { type: 'artifact-progress'; callId: number; written: number }
  | { type: 'artifact-ended'; callId: number; message?: string };

/**
 * A module's `ctx.artifacts` asking the worker to move a blob (the worker holds the credential and
 * the cache, so every host shares one cache and one download per blob): upload the archive at
 * `path`, or check blob `sha256` out of the cache as a file of the host's own, or follow its
 * download as it is written (`follow`; the host abandons it with an `artifact-abandon`).
 * `subject`: the module and the artifact's name, for the worker's log line of the transfer
 * (`artifact uploaded`, `artifact downloaded`, `artifact read from the cache`).
 */
export type ArtifactCall = {
  type: 'artifact-call';
  executionId: string;
  callId: number;
  subject?: TransferSubject;
} &
  /**
   * `digest`: the archive's, computed by the host as it packed it (so the worker does not read it to hash it).
   * `putPacking`: upload the archive the host is packing at `path` as it grows; the host reports
   * its growth and end with {@link ArtifactPackProgress} messages of the same `callId`.
   */
  (
    | { op: 'put'; path: string; digest?: Digest }
    | { op: 'putPacking'; path: string }
    | { op: 'checkOut' | 'follow'; sha256: string }
  );

/**
 * How an archive the host packs for a `putPacking` call (`callId`) grows: `written` bytes are in
 * its file; then its end, with the archive's `digest`, or `message` when the packing failed.
 */
export type ArtifactPackProgress =
  | { type: 'artifact-pack-progress'; callId: number; written: number }
  | { type: 'artifact-pack-ended'; callId: number; digest?: Digest; message?: string };

/** The host gives up a followed download (call `callId`'s): its archive was refused. */
export interface ArtifactAbandon {
  type: 'artifact-abandon';
  callId: number;
}

/**
 * Written by a host on its stdout and on its stderr, followed by the host's `markNonce`, a space,
 * the execution's id and a newline, once a module ended (before its `done` message) while some of
 * the host's own writes to them were still queued in the host (see `marked` in `done`): a pipe
 * delivers in order, so once the worker read it on both, it has every line the module wrote there
 * and closes the execution's output (rather than after a fixed delay, which a loaded machine
 * outruns). Starts with a NUL, which no text a module prints with `console.*` is expected to
 * hold; the nonce (random, given in `init` on the host channel (fd 3), never in the environment or on a pipe a
 * module reads) makes a line a module prints that looks like a mark an ordinary line: it cannot
 * end its own output early or put lines in the next execution's.
 */
export const OUTPUT_END_MARK = '\u0000mpd-output-end ';

/** A log line of the module (`ctx.logger`), written on the worker's side (masked there). */
export interface HostLogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields?: Record<string, unknown>;
}

/**
 * The module's log lines since the last such message, in order (at most
 * {@link HOST_LOG_BATCH_LINES}): one message per turn of the host's event loop rather than one per
 * line, as each message is serialised and written on its own.
 */
export interface HostLogBatch {
  type: 'logs';
  executionId: string;
  lines: HostLogLine[];
}

/** The most log lines in one {@link HostLogBatch}: a module logging in a loop that never yields sends one every this many lines. */
export const HOST_LOG_BATCH_LINES = 500;

/**
 * About the most characters of log text (messages and fields' JSON) in one {@link HostLogBatch}
 * (1 MiB; a line is never split): a batch is sent once it holds this many, so that a batch's
 * line stays far below the channel's line limit (`channelLineLimit` in `host-channel.ts`) unless
 * one log line alone nears it — such a line breaks the channel, and its execution fails as a
 * crash naming the limit.
 */
export const HOST_LOG_BATCH_BYTES = 1024 * 1024;

/** What a host tells the worker. */
export type FromHost =
  /** The pipeline is loaded: the host takes executions. */
  | { type: 'ready' }
  /** The pipeline could not be loaded (or is not the worker's); the host exits. */
  | { type: 'init-failed'; message: string }
  | HostLogBatch
  | ArtifactCall
  | ArtifactPackProgress
  | ArtifactAbandon
  /**
   * The module's code settled: its `run` returned (`ok`) or threw (not `ok`). Sent at once, before
   * the host's own work for the module's end (its result serialised and checked, a result that
   * goes by reference written to its file, its `ctx.artifacts` calls ended) and its `done`. From
   * then the worker no longer lets a cancel replace the outcome (Temporal's rule: once an
   * activity's code completed, its completion wins over a later cancel): the execution is answered
   * with what `done` says, a success kept, rather than Cancelled, and the module is not run again
   * for a cancel that came too late to stop its code. A cancel the worker got before it read this
   * message it asks the host about (`cancel-request`): this message, sent before the host read
   * that request, is the host's verdict that the code had ended (else `stopped`). The module's
   * timeout still ends an execution whose host does not send `done` after this (a hang in its
   * end): answered TimedOut, its group stopped (`hosted-execution.ts`). A host that never sends it
   * (one of another version: host and worker ship together) leaves every stop as it was.
   */
  | { type: 'returned'; executionId: string; ok: boolean }
  /**
   * The module was stopped before its code returned or threw (its signal aborted: at the worker's
   * `cancel-request` or `cancel`, at SIGTERM, or as the worker went): the verdict on a
   * `cancel-request` that came in time, on which the worker answers the execution Cancelled (or
   * TimedOut, for its timeout's) and stops the host's group. A host sends one of `returned` and `stopped` per execution, the first
   * that happens, never both: the worker takes the first it reads.
   */
  | { type: 'stopped'; executionId: string }
  /**
   * The module returned or threw. Its result serialised (checked against `maxResultBytes` and
   * the depth limit in the host) is `resultText`, or, when it goes by reference (see
   * `inlineResultBytes` in `init`), in the file `resultFile`: exactly its execution's
   * `resultFilePath(artifactScratchDir, executionId)`, which the worker checks
   * (`fromHostProblem`: any other path, a file elsewhere on the worker's machine or another
   * execution's, breaks the channel), then uploads if it is a regular file (not a link) within
   * `maxResultBytes`, and removes. `leftoverChildren`:
   * how many processes the module left running — children of any of the host's threads, and
   * processes of its group whose parent exited (`sh -c 'server &'`), see `leftoverCheck` in
   * `process-group.ts`; a host with any is not reused (they may hold its pipes). `null`: the
   * check failed (an unexpected `/proc` error), so it is not known: not reused either.
   *
   * `marked`: whether the host wrote its end marks ({@link OUTPUT_END_MARK}) on its stdout and
   * stderr before this message. It does when the worker cannot read its pipes to their end
   * (`readsToEnd` false), when the module was stopped or left processes running, and when some
   * of the host's own writes to them (`process.stdout.write`: `console.*`, its modules' commands'
   * lines) are still queued in the host, not yet in the pipe. Otherwise
   * (false) every byte written to the two pipes before this message — by the host, by a raw
   * `fs.writeSync(1, …)`, by a command with inherited stdio that ended — is in the pipes already:
   * the worker, which reads them, has read each to there by the check phase of the event loop's
   * turn that read this message, or of a later turn while a pipe held more than libuv reads in
   * one poll (see `ModuleHost.answerUnmarked`), and has then every byte of the execution. Two pipe
   * writes in the host and two reads in the worker per module less (issue 14).
   */
  | ({ type: 'done'; executionId: string; leftoverChildren: number | null; marked: boolean } & (
      { ok: true; resultText: string } | { ok: true; resultFile: string } | { ok: false; thrown: ThrownDescription }
    ))
  /**
   * An error escaped the module (an unhandled rejection, an uncaught exception): the host's
   * state can no longer be trusted, it exits. `executionId` is the execution it was running, if
   * any.
   */
  | { type: 'crash'; executionId: string | undefined; what: string; thrown: ThrownDescription };

/**
 * The file descriptor, in a module host, of its **lease channel**: a pipe the worker writes its
 * lease to, read by a thread of the host's own (`module-host-lease.ts`) rather than by the
 * host's main thread, which a module may block (`execSync`) for as long as it likes. Not the host
 * channel (fd 3) for that reason.
 */
export const LEASE_FD = 4;

/**
 * One line on the lease channel: when the worker's lease ends, in ms on `monotonicNow()`'s clock
 * (shared by every process of the machine), or `-` for none (a worker without an orchestrator).
 * Every host gets each renewal, idle or not; a host **holds** the lease only while it runs a
 * module (its main thread says so, through memory it shares with the watchdog thread: no write
 * on this channel per module) or once the worker sent {@link LEASE_HOLD_LINE}. A host whose lease
 * ends while it holds it kills its process group, itself included.
 */
export function leaseLine(endsAt: number | undefined): string {
  return endsAt === undefined ? '-\n' : `${endsAt}\n`;
}

/**
 * The line by which the worker makes a host hold the lease from now on, whatever its main thread
 * says: written when the worker stops the group of a host that held it (a cancel, a timeout, a
 * crash, processes left behind), so that no kill grace runs past the lease.
 */
export const LEASE_HOLD_LINE = 'hold\n';

/**
 * The host's preload, `module-host-loader.mjs` at the package's root beside `src` and `dist`, as a
 * URL: the worker passes it to every host with `--import` (it sets the host's V8 flags before
 * anything else is loaded, then registers tsx's loaders); a host from `dist` imports it again
 * (the same module) to register tsx itself, just before the pipeline file (round AD). Both
 * `src/executor` and `dist/executor` are two levels below the package's root.
 */
export const HOST_LOADER = new URL('../../module-host-loader.mjs', import.meta.url).href;
