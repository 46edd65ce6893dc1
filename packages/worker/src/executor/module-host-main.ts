/**
 * A module host: the process the worker runs modules in (started by `module-host.ts`, in its
 * own process group, with tsx's loader). It loads the pipeline file once, then runs one module
 * at a time as the worker asks over its channel (`host-channel.ts`), and sends back the module's log lines and
 * its serialised result or what it threw. Whatever a module does here — block the event loop,
 * leave a rejection unhandled, call `process.exit()`, exhaust the heap — ends this process at
 * worst, never the worker, whose heartbeats and HTTP server run on their own event loop.
 *
 * - An error that escapes the module (unhandled rejection, uncaught exception) is reported as a
 *   crash and the host exits: its state cannot be trusted any more.
 * - SIGTERM (the worker stopping the group) aborts the running module's signal; the host exits
 *   once the module settled and no other process of its group runs (at once when idle and
 *   alone): it stays while they do, so that its lease watchdog goes on watching them. The worker
 *   sends SIGKILL after its kill grace.
 * - When its channel with the worker closes (the worker exited or was killed), the host stops its own group
 *   the same way, so that nothing a module started outlives the worker.
 * - When its lease ends while it holds it (it runs a module, or its group is being stopped after
 *   one) and the worker did not renew it (frozen, stalled, or fenced and not done stopping the
 *   group in time), a thread of the host kills the whole group at once (`module-host-lease.ts`),
 *   whatever the main thread is doing. An idle host holds no lease.
 */
// The host's V8 flags (its tier-up delayed, `host-v8-flags.ts`) are set by its preload
// (`module-host-loader.mjs`), before tsx and any code of the host is loaded.
import { readFile } from 'node:fs/promises';
import { describeBytes } from '@mpd/contract/limits';
import {
  type AnyModule,
  type JsonValue,
  loadPipelineFile,
  type ModuleArtifacts,
  type ModuleLogger,
  type Pipeline,
} from '@mpd/pipeline';
import type { BlobFollower } from '../artifacts/blob-progress.js';
import {
  type BlobTransport,
  type Digest,
  type ExecutionArtifacts,
  type FollowedBlob,
  moduleArtifacts,
  type PackFollower,
  type TransferSubject,
} from '../artifacts/module-artifacts.js';
import { ExecutionCancelledError, ModuleTimeoutError } from '../errors.js';
import { ExecutionStop } from './execution-stop.js';
import {
  type ArtifactCall,
  type FromHost,
  HOST_LOADER,
  HOST_LOG_BATCH_BYTES,
  HOST_LOG_BATCH_LINES,
  type HostLogBatch,
  type HostLogLine,
  OUTPUT_END_MARK,
  type ToHost,
} from './host-protocol.js';
import { HOST_CHANNEL_FD, messageLine, openHostChannel, writeLine } from './host-channel.js';
import type { CommandScope } from './module-commands.js';
import { createModuleContext, ensureWorkingDirectory, type ModuleContextFields } from './module-context.js';
import { startLeaseWatchdog } from './module-host-lease.js';
import { secretBytes } from './module-output.js';
import { childrenOf, groupMembers, leftoverCheck, signalGroup } from './process-group.js';
import { progressReports } from './progress-reports.js';
import { goesByReference, writeResultFile } from './result-file.js';
import { checkedResult } from './result-limits.js';
import { describeThrown, safeString, serialise } from './values-as-text.js';

/**
 * The host's stdout and stderr (pipes to the worker) block on a full pipe, as node leaves a pipe
 * it did not open itself: libuv makes them non-blocking once `process.stdout` is used, and a
 * module's `fs.writeSync(1, …)` (or a synchronous logger's) then threw `EAGAIN` or wrote a part of
 * what it was given while the worker was behind (a new user's module lost 3.7 of 5.2 MB, issue
 * 13). The pipe's flag is shared with every process given it: a command started with inherited
 * stdio made it blocking anyway (libuv does so for a child's fds 0-2), so a host's pipes were
 * blocking or not depending on what its earlier modules ran. The host's own writes (a command's
 * lines it passes on) now wait in the write for the worker to read, instead of in the stream's
 * queue: the command's stream is not read meanwhile, so it waits too, as before past the
 * queue's bound.
 */
for (const stream of [process.stdout, process.stderr] as unknown as {
  _handle?: { setBlocking?(on: boolean): number };
}[])
  stream._handle?.setBlocking?.(true);

// The host's two streams, read once: `process.stdout` and `process.stderr` are getters, and
// every module ends with a look at both queues (see {@link ownOutputQueued}).
const { stdout, stderr } = process;

/** The channel with the worker (see `host-channel.ts`); closed once the worker is gone. */
let channelOpen = true;
const channel = (() => {
  try {
    return openHostChannel(onMessage, () => {
      channelOpen = false;
      stopOwnGroup();
    });
  } catch {
    process.stderr.write(`module-host-main is started by the mpd worker, with its channel on fd ${HOST_CHANNEL_FD}\n`);
    process.exit(2);
  }
})();

let pipeline: Pipeline | undefined;
let killGraceMs = 10_000;
/** The worker's nonce for this host's end marks (see OUTPUT_END_MARK). */
let markNonce = '';
/** Whether the worker reads this host's pipes to their end: end marks only when needed (see `marked` in FromHost's `done`). */
let readsToEnd = false;
/** The worker's constants, from `init` (the same for every execution on this host). */
let workerId = '';
let maxResultBytes = 0;
let artifactScratchDir: string | null = null;
let inlineResultBytes = 0;
let current: RunningModule | undefined;
/** Set once an error escaped: the host only reports it and exits. */
let crashed = false;
/** Set by SIGTERM: the host exits once the running module settled. */
let terminating = false;
/** Set once the host is about to exit (see {@link exitWhenAlone}). */
let leaving = false;
/** Set when the worker is gone: the host stops its group, then exits. */
let orphaned = false;
/** What a module left running (children of any thread, orphans in the group): see {@link leftoverCheck}. */
const leftovers = leftoverCheck();
const lease = startLeaseWatchdog();

/**
 * The module running on the host: what its context is made of (read by `createModuleContext`),
 * and how it is stopped, with its abort signal made only once the module (or a command it runs)
 * reads it (see {@link ExecutionStop}).
 */
class RunningModule extends ExecutionStop implements ModuleContextFields {
  /** Set once the module is found in the pipeline. */
  module!: AnyModule;
  readonly executionId: string;
  /** The module's name, as the worker sent it: its artifacts' transfers are logged with it. */
  readonly moduleName: string;
  readonly params: JsonValue | undefined;
  readonly results: Record<string, JsonValue>;
  readonly env: Record<string, string>;
  readonly workingDirectory: string;
  readonly workerId: string;
  private moduleLogger: ModuleLogger | undefined;
  private readonly artifactScratchDir: string | null;
  private artifactsApi: ExecutionArtifacts | undefined;
  private commandOutput: CommandScope['onOutput'];
  /**
   * Where the lines of the module's commands (`ctx.spawn`, `ctx.exec`, piped) go: while it runs,
   * to the host's own stdout and stderr, as `console.*` does: the worker reads both line by line
   * and ships them as the running module's output (a host runs one module at a time). Once it
   * ended, a command it left (or an orphan of one, `sh -c '(sleep 2; echo) &'`, holding the
   * pipe) may still write: such lines are its own execution's late lines, sent as its log lines
   * (`info` for stdout, `warn` for stderr), never the host's output, which the worker ships as
   * whatever module runs next (round J mend: a new user's `late-line` in the next module's
   * output, when the leftover check missed the orphan). Made at first use (see `lineWriter`).
   */
  get onOutput(): CommandScope['onOutput'] {
    return (this.commandOutput ??= commandOutput(this));
  }
  /** A command given an inherited stdout or stderr writes straight into the worker's pipe (no read, no copy here). */
  readonly ownOutputCaptured = true;
  /** The execution's secret values: a command's over-long line is never cut inside one (the worker masks each piece alone). */
  readonly secrets: readonly Buffer[] | undefined;

  constructor(message: Extract<ToHost, { type: 'execute' }>) {
    super();
    this.executionId = message.executionId;
    this.moduleName = message.moduleName;
    this.params = message.params;
    this.results = message.results;
    this.env = message.env;
    this.workingDirectory = message.workingDirectory;
    this.workerId = workerId;
    this.artifactScratchDir = artifactScratchDir;
    this.secrets = secretBytes(message.secrets);
  }

  /**
   * Set once the module's code returned or threw (its `run` settled), as its `returned` is sent:
   * from then a `cancel-request` stops nothing (see `cancel-request` in `ToHost`).
   */
  codeSettled = false;

  /**
   * Stops the module (see `ExecutionStop.abort`), the first time only. Before its code returned or
   * threw, the worker is told first (`stopped`): the host's verdict on a cancel, sent instead of
   * `returned` (never both), whichever stop this is (a `cancel-request`, a `cancel`, SIGTERM).
   */
  override abort(reason: unknown): void {
    if (this.aborted) return;
    if (!this.codeSettled) send({ type: 'stopped', executionId: this.executionId });
    super.abort(reason);
  }

  /**
   * The module's code returned (`ok`) or threw: the worker is told at once (`returned`), unless it
   * was stopped before (it was told `stopped` then).
   */
  settled(ok: boolean): void {
    this.codeSettled = true;
    if (!this.aborted) send({ type: 'returned', executionId: this.executionId, ok });
  }

  /** `ctx.logger`, made at the module's first use of it (four functions per module that most no-op modules never call). */
  get logger(): ModuleLogger {
    return (this.moduleLogger ??= logger(this.executionId));
  }

  /** `ctx.artifacts`, made at the module's first use of it (most modules never touch it). */
  get artifacts(): ModuleArtifacts {
    this.artifactsApi ??= moduleArtifacts({
      transport: this.artifactScratchDir === null ? undefined : new WorkerBlobCalls(this.executionId),
      module: this.moduleName,
      scratchDir: this.artifactScratchDir ?? this.workingDirectory,
      workingDirectory: this.workingDirectory,
      // Read only when a download starts (the signal is made then, see ExecutionStop).
      moduleSignal: () => this.signal,
    });
    return this.artifactsApi.api;
  }

  /**
   * The module ended (success too): an upload or a download it left running ends with its
   * attempt, its archive or staging directory removed once this resolves, so nothing more lands
   * in its directory after the answer, and its rejection is handled, never a crash blamed on the next module of this host
   * (see `ExecutionArtifacts.end`).
   * @returns undefined for a module that never used ctx.artifacts (nothing to wait for: no await per module)
   */
  endArtifacts(reason?: unknown): Promise<void> | undefined {
    return this.artifactsApi?.end(reason);
  }
}

/** `ctx.artifacts` calls waiting for the worker's answer, by call id. */
const artifactCalls = new Map<number, { resolve: (value: never) => void; reject: (error: Error) => void }>();
/** The followers of downloads being followed (`follow` calls), by call id, until their `artifact-ended`. */
const followers = new Map<number, BlobFollower>();
let nextCallId = 0;

/**
 * A module host's {@link BlobTransport}: it asks the worker, which holds the credential and the
 * one cache every host of the worker shares (so one blob is downloaded once per worker).
 */
class WorkerBlobCalls implements BlobTransport {
  constructor(private readonly executionId: string) {}

  private call<T>(
    request:
      | { op: 'put'; path: string; digest?: Digest }
      | { op: 'putPacking'; path: string }
      | { op: 'checkOut' | 'follow'; sha256: string },
    subject: TransferSubject | undefined,
    callId = nextCallId++,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      artifactCalls.set(callId, { resolve: resolve as (value: never) => void, reject });
      send({
        type: 'artifact-call',
        executionId: this.executionId,
        callId,
        ...request,
        ...(subject ? { subject } : {}),
      } as ArtifactCall);
    });
  }

  put(path: string, digest?: Digest, subject?: TransferSubject): Promise<Digest> {
    return this.call({ op: 'put', path, ...(digest ? { digest } : {}) }, subject);
  }

  /**
   * The worker uploads the archive as it is packed: told of its growth as `progressReports`
   * tells it (a slow packing still moves the upload on); then its end.
   */
  putPacking(path: string, subject?: TransferSubject): { follower: PackFollower; stored: Promise<Digest> } {
    const callId = nextCallId++;
    const stored = this.call<Digest>({ op: 'putPacking', path }, subject, callId);
    const reports = progressReports((written) => send({ type: 'artifact-pack-progress', callId, written }));
    let ended = false;
    const follower: PackFollower = {
      written: (bytes) => {
        if (!ended) reports.written(bytes);
      },
      ended: (outcome) => {
        if (ended) return;
        ended = true;
        reports.stop();
        send({
          type: 'artifact-pack-ended',
          callId,
          ...('digest' in outcome ? { digest: outcome.digest } : { message: outcome.error.message }),
        });
      },
    };
    return { follower, stored };
  }

  checkOut(sha256: string, subject?: TransferSubject): Promise<{ path: string }> {
    return this.call({ op: 'checkOut', sha256 }, subject);
  }

  follow(
    sha256: string,
    follower: BlobFollower,
    signal: AbortSignal,
    subject?: TransferSubject,
  ): Promise<FollowedBlob> {
    // Abandoned already: nothing asked of the worker (an `abort` listener would never hear it,
    // and the worker's download would wait for a consumer that never connects; round P).
    if (signal.aborted) return Promise.reject(signal.reason);
    const callId = nextCallId++;
    followers.set(callId, follower);
    signal.addEventListener('abort', () => send({ type: 'artifact-abandon', callId }), { once: true });
    return this.call<FollowedBlob>({ op: 'follow', sha256 }, subject, callId).catch((error: unknown) => {
      followers.delete(callId);
      throw error;
    });
  }
}

/**
 * How much of its commands' output a host keeps while the worker has not read it yet, bytes: past
 * it, the command's stream waits. Enough for a burst of about 40,000 lines of 100 characters to
 * leave the command at once (the worker reads in turns with its other work). With the host's
 * stdout blocking (see the top of this file) its writes wait in the write instead and the queue
 * stays empty in practice, but not always: the blocking flag belongs to the pipe, which every
 * process given it with inherited stdio shares, and one that sets `O_NONBLOCK` on it and exits
 * without restoring it (node restores its stdio's flags at exit; a program calling `fcntl` need
 * not) makes the host's writes queue again: 4 MiB written by the host queued whole in 3 ms
 * instead of waiting 200–370 ms for its reader (issue 14, round G, an experiment). So the bound
 * is kept, and so is the wait for the queues before the next module ({@link ownOutputSent}):
 * each costs a module that writes nothing a length comparison.
 */
const HOST_OUTPUT_BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * Writes lines of a module's command (the whole lines of a read of its pipe, as bytes) to the
 * host's stream of the same name, as they are: one write per read, where a write per line, and
 * decoding and encoding each, cost 200,000 writes for 200,000 lines (`pnpm bench`, benchmark 5).
 * Past {@link HOST_OUTPUT_BUFFER_BYTES} not yet read by the worker, the command's stream waits
 * for it to drain: the lines piled up in the host's memory otherwise (its RSS grew by 110 MB for
 * 800,000 lines, by about 14 MB per 100,000).
 */
function writeToOwnStream(stream: 'stdout' | 'stderr', lines: Buffer): Promise<void> | undefined {
  const own = process[stream];
  own.write(lines);
  if (own.writableLength <= HOST_OUTPUT_BUFFER_BYTES) return undefined;
  // Past the stream's own mark, so its write said so: 'drain' comes once it is empty. One
  // listener per stream, shared by every writer waiting (each command's streams, each block of
  // a read): a listener per write passed Node's 10 and put a MaxListenersExceededWarning in the
  // module's own log (a new user's 1,000,000-line module).
  let waiting = drains[stream];
  if (!waiting) {
    waiting = new Promise((resolve) =>
      own.once('drain', () => {
        drains[stream] = undefined;
        resolve();
      }),
    );
    drains[stream] = waiting;
  }
  return waiting;
}

/**
 * The {@link RunningModule.onOutput} of `running`: its commands' lines to the host's streams
 * while it is the running module, as its late log lines after (see there).
 */
const commandOutput =
  (running: RunningModule) =>
  (stream: 'stdout' | 'stderr', lines: Buffer): Promise<void> | undefined => {
    if (current === running) return writeToOwnStream(stream, lines);
    const write = lineWriter(running.executionId, stream === 'stdout' ? 'info' : 'warn');
    const text = lines.toString('utf8');
    for (const line of text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n')) write(line, { stream });
    return undefined;
  };

/** The 'drain' each of the host's streams is awaited for, while one is. */
const drains: Record<'stdout' | 'stderr', Promise<void> | undefined> = { stdout: undefined, stderr: undefined };

/**
 * Sends a message to the worker; `then` runs once it is written (or could not be).
 * @throws the serialisation error for a message JSON cannot write (while the channel is open).
 */
function send(message: FromHost, then?: () => void): void {
  // The module's log lines before anything sent after them (its end, a crash, an artifact call).
  if (message.type !== 'logs') flushLogs();
  if (!channelOpen) {
    then?.(); // the worker is gone
    return;
  }
  // One write per message; a failed write closes the channel (its 'error'), and `then` runs still.
  const line = messageLine(message);
  if (then) channel.write(line, () => then());
  else writeLine(channel, HOST_CHANNEL_FD, line);
}

/**
 * Exits once what was sent is written (or after a second, whatever happens) and no other process
 * of the group runs ({@link exitWhenAlone}); an orphaned host exits once its group is stopped
 * instead ({@link stopOwnGroup}).
 */
function exitAfter(message: FromHost, code: number): void {
  if (orphaned) return;
  const timer = setTimeout(() => exitWhenAlone(code), 1_000);
  send(message, () => {
    clearTimeout(timer);
    exitWhenAlone(code);
  });
}

/** How often a host that is done checks whether the rest of its group is gone (ms). */
const ALONE_POLL_MS = 50;

/**
 * Exits once no other process of the host's group runs: processes a cancelled module started
 * may ignore SIGTERM until the worker's SIGKILL, and meanwhile the host's lease watchdog must go
 * on watching them (were the worker frozen now, they would otherwise run past the lease).
 * Where there is no `/proc`, at once.
 */
function exitWhenAlone(code: number): void {
  if (leaving) return;
  leaving = true;
  const poll = (): void => {
    const others = (groupMembers(process.pid) ?? []).filter((pid) => pid !== process.pid);
    if (others.length === 0) process.exit(code);
    setTimeout(poll, ALONE_POLL_MS);
  };
  poll();
}

/** The running module's log lines not sent yet (see {@link HostLogBatch}). */
let logBatch: HostLogBatch | undefined;
let logFlushScheduled = false;
/** The characters of {@link logBatch}'s messages and fields' JSON (for {@link HOST_LOG_BATCH_BYTES}). */
let logBatchCharacters = 0;

/** Sends the log lines waiting, if any: at the end of the turn, when a batch is full, and before any other message. */
function flushLogs(): void {
  logFlushScheduled = false;
  const batch = logBatch;
  if (batch === undefined) return;
  logBatch = undefined;
  logBatchCharacters = 0;
  send(batch);
}

// Made by a factory rather than written inline: under tsx every function written where it gets a
// name costs a `defineProperty` of that name each time it is created (four per module here).
const lineWriter =
  (executionId: string, level: HostLogLine['level']) =>
  (message: string, fields?: Record<string, unknown>): void => {
    let line: HostLogLine = { level, message: String(message) };
    let characters = line.message.length;
    if (fields !== undefined) {
      try {
        // Serialised now, as the line is (a batch is serialised later: the module may change or
        // break its fields meanwhile).
        const text = JSON.stringify(fields);
        characters += text.length;
        line = { ...line, fields: JSON.parse(text) as Record<string, unknown> };
      } catch {
        // Fields JSON cannot write (a cycle, a BigInt): sent as text.
        line = { ...line, fields: { fields: safeString(fields) } };
      }
    }
    if (logBatch !== undefined && logBatch.executionId !== executionId) flushLogs();
    logBatch ??= { type: 'logs', executionId, lines: [] };
    logBatch.lines.push(line);
    logBatchCharacters += characters;
    if (logBatch.lines.length >= HOST_LOG_BATCH_LINES || logBatchCharacters >= HOST_LOG_BATCH_BYTES) flushLogs();
    else if (!logFlushScheduled) {
      logFlushScheduled = true;
      setImmediate(flushLogs);
    }
  };

/** The module's `ctx.logger`: its lines go to the worker, which masks and writes them. */
function logger(executionId: string): ModuleLogger {
  return {
    debug: lineWriter(executionId, 'debug'),
    info: lineWriter(executionId, 'info'),
    warn: lineWriter(executionId, 'warn'),
    error: lineWriter(executionId, 'error'),
  };
}

/** Registers tsx's loaders unless the preload did (see `module-host-loader.mjs`). */
async function registerTypeScriptLoaders(): Promise<void> {
  const loader = (await import(HOST_LOADER)) as { registerTypeScriptLoaders: () => Promise<void> };
  await loader.registerTypeScriptLoaders();
}

async function init(message: Extract<ToHost, { type: 'init' }>): Promise<void> {
  killGraceMs = message.killGraceMs;
  markNonce = message.markNonce;
  readsToEnd = message.readsToEnd;
  workerId = message.workerId;
  maxResultBytes = message.maxResultBytes;
  artifactScratchDir = message.artifactScratchDir;
  inlineResultBytes = message.inlineResultBytes;
  try {
    // tsx's loaders for the pipeline file, registered only now when this file is JavaScript (an
    // installed worker): the host's own modules were loaded without its hooks (see
    // `module-host-loader.mjs`, its preload, which registered them already from the sources).
    await registerTypeScriptLoaders();
    pipeline = await loadPipelineFile(message.sourceFile);
  } catch (error) {
    exitAfter({ type: 'init-failed', message: describeThrown(error).message }, 1);
    return;
  }
  // Whether this is still the worker's pipeline is checked per module, as each one runs
  // (checkedModule): not by hashing the whole pipeline here (issue 14).
  // What runs beside the host now is its own (tsx's esbuild service): never a module's leftover.
  leftovers.settle();
  send({ type: 'ready' });
}

/**
 * The module `message` names, from the pipeline this host loaded, once its definition is the one
 * the worker loaded (the same `moduleDigest`: its name, dependencies, parameters, timeout, code and
 * declared artifacts, and the pipeline's name).
 * @throws Error when the host's pipeline has no such module, or when the pipeline file changed
 * since the worker loaded it (the execution fails with that message: the worker must restart).
 */
function checkedModule(message: Extract<ToHost, { type: 'execute' }>): AnyModule {
  const module = pipeline?.modules.get(message.moduleName);
  if (!module) throw new Error(`Module '${message.moduleName}' is not in the pipeline the module host loaded`);
  const digest = pipeline!.moduleDigest(message.moduleName);
  if (digest !== message.moduleDigest) {
    throw new Error(
      `Module '${message.moduleName}' could not run: Pipeline file ${pipeline!.sourceFile} changed since the worker loaded it (the module's digest is ${digest}, the worker's ${message.moduleDigest}): restart the worker`,
    );
  }
  return module;
}

async function execute(message: Extract<ToHost, { type: 'execute' }>): Promise<void> {
  const { executionId } = message;
  // The host holds the worker's lease while the module runs (and, unless it ends cleanly, until
  // the worker stopped its group): one that has already ended kills the group here and now.
  lease.hold(message.leaseEndsAt);
  const running = new RunningModule(message);
  current = running;
  let end:
    | { ok: true; resultText: string }
    | { ok: true; resultFile: string }
    | { ok: false; thrown: ReturnType<typeof describeThrown> };
  let failure: unknown; // what the module threw, for its downloads' end
  try {
    // What the module before wrote and this process still holds goes into the pipes first: a byte
    // this module writes straight to them (`fs.writeSync(1, …)`, a command with inherited stdio)
    // would pass it otherwise, and be read as the earlier module's.
    if (ownOutputQueued()) await ownOutputSent(running);
    if (running.aborted) throw running.reason;
    const module = checkedModule(message);
    running.module = module;
    if (message.resultFiles !== null) await readResultFiles(running.results, message.resultFiles);
    // Usually there: no promise to await (see ensureWorkingDirectory).
    const making = ensureWorkingDirectory(message.workingDirectory);
    if (making) await making;
    // The module's code settled: the worker is told at once, before the host's work for its end
    // below (see `returned` in FromHost), so that a cancel coming meanwhile no longer replaces
    // its outcome: one it asks about once this is sent (`cancel-request`) stops nothing.
    let value: unknown;
    try {
      value = await module.run(createModuleContext(running));
    } catch (error) {
      running.settled(false);
      throw error;
    }
    running.settled(true);
    const resultText = checkedResult(module.name, serialise(module.name, value), maxResultBytes);
    // A result that goes by reference is written here, on the host's main thread, and the worker
    // uploads the file: its own main thread never reads the text (see `inlineResultBytes` in `init`).
    end =
      artifactScratchDir !== null && goesByReference(resultText, inlineResultBytes)
        ? { ok: true, resultFile: await resultFile(module.name, executionId, resultText) }
        : { ok: true, resultText };
  } catch (error) {
    end = { ok: false, thrown: describeThrown(running.aborted ? running.reason : error) };
    failure = error;
  }
  // Its end, whichever (success too), ends an upload or a download it left running (see endArtifacts) before the answer.
  const artifactsEnded = running.endArtifacts(end.ok ? undefined : failure);
  if (artifactsEnded) await artifactsEnded;
  // A rejection the module left unhandled surfaces once this turn's microtasks ran: let it,
  // so that it fails this module (as a crash) rather than the next one on this host.
  await new Promise((resolve) => setImmediate(resolve));
  if (crashed) return;
  current = undefined;
  const leftoverChildren = leftovers.count();
  const stopping = running.aborted || terminating;
  // Marks only where the worker cannot know otherwise that it read everything: while writes of
  // this process to its stdout or stderr wait in their queue (the pipe was full), the module's
  // last lines are not in the pipe yet, and the mark, queued behind them, tells when they are;
  // and while a process the module started runs on (it may write to the pipes still). With both
  // queues empty and no child, every byte written so far is in the pipes, which the worker reads
  // to their end when it gets `done` (see `marked` in FromHost's `done`).
  const marked = !readsToEnd || stopping || leftoverChildren !== 0 || ownOutputQueued();
  // Written out rather than spread from `end`: a spread into a literal defines each key by a
  // runtime call in the host's cold code.
  const done: FromHost = end.ok
    ? 'resultText' in end
      ? { type: 'done', executionId, leftoverChildren, marked, ok: true, resultText: end.resultText }
      : { type: 'done', executionId, leftoverChildren, marked, ok: true, resultFile: end.resultFile }
    : { type: 'done', executionId, leftoverChildren, marked, ok: false, thrown: end.thrown };
  // After everything the module wrote on the two pipes (see OUTPUT_END_MARK).
  if (marked) {
    const mark = `${OUTPUT_END_MARK}${markNonce} ${executionId}\n`;
    stdout.write(mark);
    stderr.write(mark);
  }
  // A cancelled or timed-out host is not reused: the worker is stopping its group.
  if (stopping) {
    exitAfter(done, 0);
    return;
  }
  // Reused (no process left behind): idle, it holds no lease. Otherwise (some, or not known) the worker stops its group.
  if (leftoverChildren === 0) lease.release();
  send(done);
}

/**
 * Puts in `results` the value of each dependency whose result came by reference, read from its
 * file and parsed here (on the host's main thread, whose stalls do not touch its lease: the
 * worker's would). The worker keeps each file until the execution stopped.
 * @throws an Error named `ResultReferenceError` when one cannot be read or is not JSON
 */
async function readResultFiles(
  results: Record<string, JsonValue>,
  files: Readonly<Record<string, { path: string; sha256: string }>>,
): Promise<void> {
  for (const [name, { path, sha256 }] of Object.entries(files)) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw resultReferenceError(
        `The result of dependency '${name}' (stored by reference, blob ${sha256}) could not be read: ${(error as Error).message}`,
      );
    }
    try {
      results[name] = JSON.parse(text) as JsonValue;
    } catch (error) {
      // The message the worker gives a module that runs in its own process (notJsonMessage).
      throw resultReferenceError(
        `The result of dependency '${name}' (blob ${sha256}) is not JSON: ${(error as Error).message}`,
      );
    }
  }
}

/**
 * Writes result text `text` of execution `executionId` to its file in the scratch directory
 * (`writeResultFile`), for the worker to upload.
 * @returns the file's path
 * @throws an Error named `ResultReferenceError` naming the result's size and why it could not be written
 */
async function resultFile(moduleName: string, executionId: string, text: string): Promise<string> {
  try {
    return await writeResultFile(artifactScratchDir!, executionId, text);
  } catch (error) {
    throw resultReferenceError(
      `Module '${moduleName}' returned a result of ${describeBytes(Buffer.byteLength(text))} as JSON, over the worker's --inline-result-size, and it could not be written for the artifact store: ${(error as Error).message}`,
    );
  }
}

function resultReferenceError(message: string): Error {
  const error = new Error(message);
  error.name = 'ResultReferenceError';
  return error;
}

/** Whether writes of this process to its stdout or stderr wait in their queues (their pipe was full). */
function ownOutputQueued(): boolean {
  return stdout.writableLength > 0 || stderr.writableLength > 0;
}

/** How often a host whose own output waits in its queues checks again before it runs a module (ms). */
const QUEUED_POLL_MS = 5;

/**
 * Resolves once nothing this process wrote to its stdout and stderr waits in their queues (a
 * poll: 'drain' comes only after a write that found the queue past its mark), or `running` is
 * aborted. Only after a module whose output the worker had not read yet when it ended.
 */
async function ownOutputSent(running: RunningModule): Promise<void> {
  while (ownOutputQueued() && !running.aborted) await new Promise((resolve) => setTimeout(resolve, QUEUED_POLL_MS));
}

function crash(what: string, error: unknown): void {
  if (crashed) return;
  crashed = true;
  exitAfter({ type: 'crash', executionId: current?.executionId, what, thrown: describeThrown(error) }, 70);
}

/** The worker is gone: abort the module, stop every process of the group, SIGKILL after the grace, exit. */
function stopOwnGroup(): void {
  if (orphaned) return;
  orphaned = true;
  current?.abort(new ExecutionCancelledError('Execution cancelled: the worker is gone'));
  signalGroup(process.pid, 'SIGTERM');
  signalGroup(process.pid, 'SIGCONT');
  const deadline = Date.now() + killGraceMs;
  const check = (): void => {
    const others = (groupMembers(process.pid) ?? childrenOf(process.pid)).filter((pid) => pid !== process.pid);
    if (others.length === 0 && current === undefined) process.exit(0);
    if (Date.now() >= deadline) signalGroup(process.pid, 'SIGKILL'); // this process too
    setTimeout(check, 100);
  };
  check();
}

process.on('unhandledRejection', (reason) => crash('left a promise rejection unhandled', reason));
process.on('uncaughtException', (error) => crash('threw an uncaught exception', error));
process.on('SIGTERM', () => {
  if (orphaned) return; // this process sent it to its own group
  terminating = true;
  if (!current) {
    exitWhenAlone(0);
    return;
  }
  current.abort(new ExecutionCancelledError('Execution cancelled: the module host got SIGTERM'));
});
/** A message of the worker, in the order sent (see `openHostChannel`). */
function onMessage(message: ToHost): void {
  switch (message.type) {
    case 'init':
      void init(message);
      return;
    case 'execute':
      void execute(message);
      return;
    case 'artifact-answer': {
      const waiting = artifactCalls.get(message.callId);
      artifactCalls.delete(message.callId);
      if (message.ok) waiting?.resolve(message.value as never);
      else waiting?.reject(new Error(message.message));
      return;
    }
    case 'artifact-progress':
      followers.get(message.callId)?.written(message.written);
      return;
    case 'artifact-ended':
      followers.get(message.callId)?.ended(message.message === undefined ? undefined : new Error(message.message));
      followers.delete(message.callId);
      return;
    case 'cancel-request':
      // The worker's cancel or the module's timeout, decided here, where the order is known: the
      // module is stopped (its abort says `stopped`) unless its code has returned or thrown (its
      // `returned` was sent before this was read: its end goes on, and its `done` decides).
      if (current?.executionId === message.executionId && !current.codeSettled)
        current.abort(
          message.reason === 'timeout'
            ? new ModuleTimeoutError(message.message)
            : new ExecutionCancelledError(message.message),
        );
      return;
    case 'cancel':
      if (current?.executionId === message.executionId && !current.aborted) {
        current.abort(
          message.reason === 'timeout'
            ? new ModuleTimeoutError(message.message)
            : new ExecutionCancelledError(message.message),
        );
      }
      return;
  }
}
