/**
 * The worker's side of one module host: a child process (`module-host-main.ts`) that loads the
 * pipeline file once and then runs modules, one at a time, off the worker's event loop. It is
 * started in its own process group, so that {@link ModuleHost.stop} reaches everything the
 * modules it ran started; it watches its channel with the worker (`host-channel.ts`) and stops
 * its group when the worker goes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Socket } from 'node:net';
import type { WorkerArtifacts } from './execution.js';
import type { BlobFollower } from '../artifacts/blob-progress.js';
import type {
  BlobTransport,
  Digest,
  FollowedBlob,
  PackFollower,
  TransferSubject,
} from '../artifacts/module-artifacts.js';
import {
  type ArtifactCall,
  type FromHost,
  HOST_LOADER,
  type HostLogLine,
  LEASE_FD,
  LEASE_HOLD_LINE,
  leaseLine,
  OUTPUT_END_MARK,
  type ToHost,
} from './host-protocol.js';
import { EARLIER_SINKS, EarlierSinks } from './earlier-sinks.js';
import { channelLineLimit, HOST_CHANNEL_FD, MessageLines, messageLine, writeLine } from './host-channel.js';
import { fromHostProblem } from './host-message-check.js';
import { hostV8Flags } from './host-v8-flags.js';
import { ByteLineSplitter, NEWLINE } from './module-output.js';
import { LATE_LINES_BURST, LATE_LINES_INTERVAL_MS, LogRateLimit, moreSevere } from './module-logger.js';
import { type GroupStop, stopProcessGroup } from './process-group.js';
import { progressReports } from './progress-reports.js';
import { notOwnFileMessage, openHostFile, scratchRealPath } from './scratch-file.js';

/**
 * The most `putPacking` calls of one execution the worker follows at once (each holds a
 * descriptor of its archive until it ends): one more is refused (round T, review U1: a module forging
 * calls in a loop could otherwise exhaust the worker's descriptors before its execution ends).
 */
export const MAX_PACKS_IN_FLIGHT = 256;

/** The host's entry file, beside this one (`.ts` in the sources, `.js` once built). */
const HOST_MAIN = fileURLToPath(
  new URL(`./module-host-main.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url),
);

/** How many of the last lines a host wrote to stderr are kept, to tell why it died. */
const STDERR_TAIL_LINES = 20;

/** How much of the end of a block of the host's stderr is decoded for its last lines (bytes). */
const STDERR_TAIL_BYTES = 8 * 1024;

/**
 * The size of each read libuv makes of a stream (`uv__read`: `alloc_cb(…, 64 * 1024, …)`, the
 * size Node's buffer for it takes), in bytes. A read that fills it may leave more in the pipe:
 * libuv reads a stream at most 32 times per poll event (2 MiB), and a socket's send buffer can
 * hold more than that (`net.core.wmem_default`, `SO_SNDBUFFORCE`). A read returns less only when
 * the socket was empty (a stream socket's `recv` copies on while bytes are queued), and libuv
 * then stops reading it until the next poll.
 */
const LIBUV_READ_BYTES = 64 * 1024;

/**
 * The most bytes a stream socket's send buffer can hold, hence the most a host's pipe can hold
 * when its unmarked `done` comes (the kernel caps `SO_SNDBUF`/`SO_SNDBUFFORCE` at `INT_MAX`
 * after doubling; the bytes queued count against it with their overhead). A pipe that delivers
 * more after `done` is being written by a process the host does not know of (not its child),
 * which must not hold the answer: see {@link ModuleHost.answerUnmarked}.
 */
const MOST_PIPE_BYTES = 2 ** 31 - 1;

/** What a host is started with. */
export interface ModuleHostOptions {
  /** The pipeline file the host loads (`Pipeline.sourceFile`). */
  sourceFile: string;
  /**
   * The worker's `Pipeline.moduleDigest`: sent with each module, which the host runs only when
   * its own pipeline's digest of it is the same (the file did not change since the worker loaded it).
   */
  moduleDigest: (moduleName: string) => string;
  /** SIGTERM to SIGKILL, for {@link ModuleHost.stop} and for the host's own stop when the worker is gone (ms). */
  killGraceMs: number;
  /** The host's V8 heap limit (`--max-old-space-size`, MiB); Node's default when undefined. */
  heapLimitMb: number | undefined;
  /** Where the host's own lines go when no execution is (or was) running on it. */
  logger: Logger;
  /** What the host's `ctx.artifacts` calls go through; undefined without an orchestrator. */
  artifacts?: WorkerArtifacts | undefined;
  /** The worker's id (`ctx.workerId` of every module the host runs). */
  workerId: string;
  /** The largest result a module may return (UTF-8 bytes of its JSON), checked in the host. */
  maxResultBytes: number;
  /**
   * Results over this (UTF-8 bytes of their JSON) go by reference (`--inline-result-size`): with
   * `artifacts`, the host writes such a result to a file in their scratch directory and the
   * worker uploads it (see `inlineResultBytes` in `host-protocol.ts`).
   */
  inlineResultBytes: number;
}

/** How a host's execution ended, as the host told it or as its exit tells it. */
export type HostEnd =
  | Extract<FromHost, { type: 'done' }>
  | Extract<FromHost, { type: 'crash' }>
  | {
      type: 'exit';
      /** The exit code; null when a signal ended the host. */
      code: number | null;
      signal: NodeJS.Signals | null;
      /** The last lines the host wrote to stderr (unmasked). */
      stderrTail: readonly string[];
    };

/** Where an execution's lines go. */
export interface ExecutionSink {
  /** A line the module logged with `ctx.logger`. */
  log(line: HostLogLine): void;
  /**
   * Lines the host process wrote to its stdout or stderr (`console.log`, Node's own warnings, the
   * lines of the module's commands): a block of whole lines per read of the pipe, as the bytes
   * written, each line ending with `\n` (see `ByteLineSplitter`).
   */
  output(stream: 'stdout' | 'stderr', lines: Buffer): void;
  /** Every line the execution's module wrote on `stream` has been read (its end mark, or the pipe's end). */
  outputEnded(stream: 'stdout' | 'stderr'): void;
  /**
   * The module's code returned (`ok`) or threw, as its host said (`returned`, `host-protocol.ts`):
   * its `done` follows once the host's work for its end is over. Only for the running execution.
   * @default nothing
   */
  returned?(ok: boolean): void;
  /**
   * The host stopped the module before its code returned or threw (`stopped`, `host-protocol.ts`):
   * its verdict on a cancel the worker asked it about. Only for the running execution.
   * @default nothing
   */
  stopped?(): void;
  /**
   * The execution's secret values, UTF-8 (those its masker masks): the host's pipes are split into
   * lines, a long one into pieces masked each alone, never cut inside one of them. @default none
   */
  readonly secrets?: readonly Buffer[] | undefined;
}

/** The node flags of a host: the worker's own, without debuggers, tsx (added once) or a heap limit it replaces. */
function hostExecArgv(heapLimitMb: number | undefined): string[] {
  const kept: string[] = [];
  const args = process.execArgv;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    const takesValue = /^--(import|require|loader|experimental-loader)$/.test(arg) || arg === '-r';
    const value = takesValue ? (args[index + 1] ?? '') : arg;
    if (takesValue) index++;
    const dropped =
      /tsx/.test(value) ||
      /^--(inspect|debug)/.test(arg) ||
      (heapLimitMb !== undefined && /^--max-old-space-size/.test(arg));
    if (!dropped) kept.push(...(takesValue ? [arg, value] : [arg]));
  }
  return [
    ...kept,
    '--import',
    HOST_LOADER,
    ...(heapLimitMb === undefined ? [] : [`--max-old-space-size=${heapLimitMb}`]),
  ];
}

/**
 * The host's arguments after its script: its V8 flags (`host-v8-flags.ts`: {@link hostV8Flags}
 * for this node's V8, less those in the host's node flags `execArgv`) as one `--v8-flags=`
 * argument, space-separated, which `module-host-loader.mjs` sets before tsx loads; none when
 * there are none.
 */
export function hostArguments(execArgv: readonly string[]): string[] {
  const flags = hostV8Flags(process.versions.v8, execArgv);
  return flags.length === 0 ? [] : [`--v8-flags=${flags.join(' ')}`];
}

/**
 * The descriptor of a pipe `child_process` made (its libuv handle's, `_handle.fd`: node's own
 * code reads it so, as for `process.stdout`), or -1 where there is none (Windows, a closed handle).
 */
function channelDescriptor(socket: Socket | undefined): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } } | undefined)?._handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : -1;
}

/** One module host process. */
export class ModuleHost {
  /**
   * Followed downloads of the host's `follow` calls, by call id: aborted when the host abandons
   * one, and every one still open when the execution that asked for it ends ({@link abandonFollows}).
   */
  private readonly abandons = new Map<number, AbortController>();
  /**
   * Archives the host is packing for its `putPacking` calls, by call id, until their end: one the
   * host never ended (it exited) fails then, so its upload does not wait for bytes that never come.
   */
  private readonly packs = new Map<number, PackFollower>();
  readonly pid: number;
  /** Resolves once the host loaded the pipeline; rejects (with the reason) if it cannot. */
  readonly ready: Promise<void>;
  /** Resolves when the host process exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  /** The worker's end of the host's channel (see `host-channel.ts`); none if the spawn failed. */
  private readonly channel: Socket | undefined;
  /** The descriptor of the worker's end of the channel (written on directly, see `writeLine`); -1 where node does not say. */
  private readonly channelFd: number;
  /** Whether the channel is open (neither end closed it, no write to it failed, nothing broke it). */
  private channelOpen: boolean;
  /** Set once a line on the channel was not a message: nothing more the host says is taken. */
  private channelBroken = false;
  /** The execution the host runs: its id, its module's name (the `module` of its transfers' log lines), and how it ends. */
  private running: { executionId: string; moduleName: string; end: (end: HostEnd) => void } | undefined;
  /**
   * The execution (null: none, the host idle) during which a stray `returned` or `stopped` was
   * last logged (see {@link ModuleHost.strayVerdict}); undefined: none yet.
   */
  private strayLoggedDuring: string | null | undefined;
  /**
   * The last execution's sink: lines written after it ended and before the next execution starts
   * still belong to it (and to its secrets); a process it left behind that writes later, while the
   * host runs another module, is read as that module's (the pipe does not say who wrote), and
   * what comes while the host is idle is not kept (see the README's "What isolation does not cover").
   */
  private sink: ExecutionSink | undefined;
  private sinkExecutionId: string | undefined;
  private sinkModuleName: string | undefined;
  /** The sinks of the executions before the last one, for their modules' late lines (see `EarlierSinks`). */
  private readonly earlier = new EarlierSinks<ExecutionSink>();
  /**
   * The limit of the lines logged for late lines of executions whose sinks are no longer kept
   * (per host: such an execution's own count is not kept either), as a kept execution's late
   * lines have theirs (see `toModuleLogger`).
   */
  private notShownLimit: LogRateLimit | undefined;
  /**
   * Per pipe, the execution whose lines it carries now: it moves on to the next execution only
   * once it read the previous one's end mark (or it had none), so that lines of a module still
   * in a pipe when the next module starts are never given to the next one.
   */
  private readonly pipeSink: Record<
    'stdout' | 'stderr',
    { sink: ExecutionSink; executionId: string; ended: boolean } | undefined
  > = { stdout: undefined, stderr: undefined };
  private readonly stderrTail: string[] = [];
  private stopping: Promise<GroupStop> | undefined;
  private hasExited = false;
  private isReady = false;
  /** The worker's end of the host's lease channel (see `module-host-lease.ts`); none if the spawn failed. */
  private readonly leaseChannel: Socket | undefined;
  /** The lease last written to the host (see {@link ModuleHost.lease}). */
  private leaseEnd: number | undefined;
  /** Whether the worker made the host hold its lease (see {@link ModuleHost.holdLease}). */
  private leaseHeld = false;
  /** This host's end marks' nonce (see OUTPUT_END_MARK). */
  private readonly markNonce = randomBytes(16).toString('hex');
  /** Per pipe, its splitter: it cuts no secret of the execution the pipe carries, nor of the running one. */
  private readonly splitters: Partial<Record<'stdout' | 'stderr', ByteLineSplitter>> = {};
  /**
   * Per pipe, whether a read filled libuv's buffer ({@link LIBUV_READ_BYTES}) since
   * {@link ModuleHost.answerUnmarked} last looked (set on each read, cleared there): the pipe may
   * hold more.
   */
  private readonly fullRead = { stdout: false, stderr: false };
  /** Per pipe, the bytes read from it (for {@link MOST_PIPE_BYTES}). */
  private readonly bytesRead = { stdout: 0, stderr: 0 };

  /**
   * The real path of the artifact scratch directory the host is given ({@link scratchRealPath}:
   * made and resolved by the worker before the host starts), or the error that stopped it; none
   * without artifacts.
   */
  private readonly scratchReal: { path: string } | { error: unknown } | undefined;

  constructor(private readonly options: ModuleHostOptions) {
    const given = options.artifacts?.scratchDir;
    try {
      this.scratchReal = given === undefined ? undefined : { path: scratchRealPath(given) };
    } catch (error) {
      this.scratchReal = { error }; // each upload of the host fails with it
    }
    const execArgv = hostExecArgv(options.heapLimitMb);
    this.child = spawn(process.execPath, [...execArgv, HOST_MAIN, ...hostArguments(execArgv)], {
      // Its own process group, so that stopping the group reaches every process a module started.
      detached: true,
      // fd HOST_CHANNEL_FD (3): the channel with the worker; fd LEASE_FD (4): the lease channel.
      stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
    });
    this.pid = this.child.pid ?? -1;
    this.channel = (this.child.stdio[HOST_CHANNEL_FD] as Socket | null) ?? undefined;
    this.channelOpen = this.channel !== undefined;
    this.channelFd = channelDescriptor(this.channel);
    this.leaseChannel = (this.child.stdio[LEASE_FD] as Socket | null) ?? undefined;
    this.leaseChannel?.on('error', () => undefined); // the host is gone: its exit handler tells
    this.leaseChannel?.unref();
    // An idle host does not keep the worker's process alive (it stops when the worker is gone);
    // one that is starting or running a module does, like any pending work (see keepAlive).
    this.child.unref();
    for (const stream of ['stdout', 'stderr'] as const) this.readLines(stream);
    const readsToEnd = this.splitters.stdout !== undefined && this.splitters.stderr !== undefined;

    let readyResolve!: () => void;
    let readyReject!: (error: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      readyResolve = resolve;
      readyReject = reject;
    });
    this.ready.catch(() => undefined);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.hasExited = true;
        this.failPacks(`the module host exited (${signal ?? `code ${code}`}) while it packed the archive`);
        this.abandonFollows();
        const tail = this.stderrTail.length > 0 ? `: ${this.stderrTail.join(' | ')}` : '';
        readyReject(new Error(`the module host exited (${signal ?? `code ${code}`}) before it was ready${tail}`));
        const running = this.running;
        this.running = undefined;
        running?.end({ type: 'exit', code, signal, stderrTail: [...this.stderrTail] });
        resolve({ code, signal });
      });
    });
    this.child.on('error', (error) => readyReject(error));
    const scratchDir = options.artifacts?.scratchDir ?? null;
    const onMessage = (line: unknown): void => {
      if (this.channelBroken) return;
      // A line a module's code wrote on fd 3 may be JSON of any shape: checked before it is
      // acted on (what throws here breaks the channel too: see MessageLines).
      const problem = fromHostProblem(line, scratchDir);
      if (problem !== undefined) throw new TypeError(problem);
      const message = line as FromHost;
      switch (message.type) {
        case 'ready':
          this.isReady = true;
          this.keepAlive(false);
          readyResolve();
          return;
        case 'init-failed':
          readyReject(new Error(message.message));
          return;
        case 'logs':
          this.log(message.executionId, message.lines);
          return;
        case 'returned':
        case 'stopped':
          // The running execution's only: a host sends either before its `done`, so one naming
          // another execution is no host's (a module's code writing on the channel): logged, once
          // per execution it came during, and ignored.
          if (this.running === undefined || message.executionId !== this.running.executionId)
            this.strayVerdict(message.type, message.executionId);
          else if (message.type === 'returned') this.sink?.returned?.(message.ok);
          else this.sink?.stopped?.();
          return;
        case 'artifact-call':
          this.answerArtifactCall(message);
          return;
        case 'artifact-abandon':
          this.abandons.get(message.callId)?.abort();
          return;
        case 'artifact-pack-progress':
          this.packs.get(message.callId)?.written(message.written);
          return;
        case 'artifact-pack-ended': {
          const follower = this.packs.get(message.callId);
          this.packs.delete(message.callId);
          if (message.digest !== undefined && message.message === undefined)
            follower?.ended({ digest: message.digest });
          else
            follower?.ended({
              error: new Error(message.message ?? 'the module host ended the packing without a digest'),
            });
          return;
        }
        case 'done':
        case 'crash': {
          if (this.running === undefined || message.executionId !== this.running.executionId) {
            if (message.type === 'crash' && !this.isReady) {
              readyReject(
                new Error(`the module host ${message.what} while loading the pipeline: ${message.thrown.message}`),
              );
            } else if (message.type === 'crash') {
              // An error escaped code an earlier module left running: the host exits; the pool replaces it.
              this.options.logger.warn(
                { hostPid: this.pid, error: message.thrown.type },
                `module host ${message.what} while idle (code an earlier module left running); replacing it`,
              );
            }
            return;
          }
          const running = this.running;
          this.running = undefined;
          this.abandonFollows();
          // Most executions have none: no message text built for nothing (issue 14, round Z).
          if (this.packs.size > 0) {
            this.failPacks(`the execution ended (${message.type}) before the module host ended packing the archive`);
          }
          this.keepAlive(false);
          if (message.type === 'done' && !message.marked) {
            // No end marks: every byte of the execution is in the pipes or already read from
            // them; read by this turn's check phase, or by a later one's if a pipe held more
            // than libuv reads in one poll (see answerUnmarked).
            const readBefore = this.bytesRead.stdout + this.bytesRead.stderr;
            setImmediate(ModuleHost.answerUnmarked, this, message, running.end, readBefore);
            return;
          }
          running.end(message);
          return;
        }
      }
    };
    if (this.channel !== undefined) {
      const lines = new MessageLines<unknown>(
        onMessage,
        (error) => this.channelBrokenBy(error),
        channelLineLimit(options.maxResultBytes),
      );
      this.channel.on('data', (chunk: Buffer) => lines.push(chunk));
      const closed = (): void => {
        this.channelOpen = false;
      };
      // The host is gone (its exit handler tells), or stopping.
      this.channel.on('error', closed);
      this.channel.on('close', closed);
    }
    this.send({
      type: 'init',
      sourceFile: options.sourceFile,
      killGraceMs: options.killGraceMs,
      markNonce: this.markNonce,
      readsToEnd,
      workerId: options.workerId,
      maxResultBytes: options.maxResultBytes,
      artifactScratchDir: scratchDir,
      inlineResultBytes: options.inlineResultBytes,
    });
  }

  /**
   * The execution on the host ended (its answer, crash, exit, or a broken channel): every
   * download it followed and has not ended is abandoned here, whatever the host said. The host
   * abandons its module's downloads at the module's end itself (`artifact-abandon`), but one whose
   * module ended just before its `follow` call went out (the stop during the download's `mkdir`,
   * under load) never connected to the streamed blob nor abandoned it, and the worker's download
   * waited for that consumer for the broadcast's connect timeout (30 s), its request held open
   * (round P: `hosted-artifacts.spec.ts`'s held-download rows passed their 30 s limit under load).
   * Called when no execution runs on the host, so no follow here is still wanted.
   */
  private abandonFollows(): void {
    if (this.abandons.size === 0) return;
    const open = [...this.abandons.values()];
    this.abandons.clear();
    for (const abandon of open) abandon.abort();
  }

  /**
   * Fails every `putPacking` upload whose archive the host has not ended (`artifact-pack-ended`)
   * with `reason`: called when the execution that asked for them ends (its `done` or `crash`, a
   * broken channel) and when the host exits. Its upload then settles, and the archive's handle
   * the worker opened is closed (see `answerArtifactCall`). Before (round T, review U1), a forged
   * `putPacking` never ended held its upload and that descriptor until the host exited: hosts
   * are reused, so a module doing so in a loop could exhaust the worker's descriptors (EMFILE).
   */
  private failPacks(reason: string): void {
    if (this.packs.size === 0) return;
    const open = [...this.packs.values()];
    this.packs.clear();
    for (const follower of open) follower.ended({ error: new Error(reason) });
  }

  /**
   * Follows a download for the host (`follow`): its progress goes to the host as messages, as
   * `progressReports` tells it (a slow or stalled download still shows the host its first bytes,
   * so an offending entry is refused before the end); the last before the end.
   */
  private follow(
    transport: BlobTransport,
    callId: number,
    sha256: string,
    subject: TransferSubject | undefined,
  ): Promise<FollowedBlob> {
    const abandon = new AbortController();
    this.abandons.set(callId, abandon);
    const reports = progressReports((written) => this.send({ type: 'artifact-progress', callId, written }));
    const follower: BlobFollower = {
      written: (bytes) => reports.written(bytes),
      ended: (error) => {
        this.abandons.delete(callId);
        reports.flush();
        this.send({ type: 'artifact-ended', callId, ...(error ? { message: error.message } : {}) });
      },
    };
    return transport.follow(sha256, follower, abandon.signal, subject).catch((error: unknown) => {
      this.abandons.delete(callId);
      throw error;
    });
  }

  /**
   * Opens the file a host asks the worker to upload (`put`, `putPacking`: a path in its scratch
   * directory, checked by `fromHostProblem`) once, as `openHostFile` does: a symbolic link, a
   * FIFO, a directory or a file of more than one link is refused (rejects, naming it:
   * `notOwnFileMessage`), and a `warn` line says so (a host's own `ctx.artifacts` never names
   * one: its module's code put it there). Round T (T1): the worker read the file by its path, so
   * a link a module left in `.scratch` got its target uploaded, and a FIFO's open waited for good.
   * @throws (rejects) the refusal, or the open's error (`ENOENT`…)
   */
  private async openHostUpload(path: string, executionId: string): Promise<FileHandle> {
    const real = this.scratchReal;
    if (real === undefined) throw new Error('no artifact scratch directory on this worker');
    if ('error' in real) throw real.error;
    const found = await openHostFile(path, real.path);
    if (found !== 'not-own-file') return found.handle;
    this.options.logger.warn(
      { hostPid: this.pid, executionId, path },
      'a module host asked to upload a file that is not a regular file of its own (a link, a FIFO, a directory, a file of two links, a link in place of its directory): refused',
    );
    throw new Error(notOwnFileMessage(path));
  }

  /**
   * A host's `put` (its own `ctx.artifacts` packs through `putPacking`; a `put` comes from a
   * module's code writing on the channel): the file opened once ({@link openHostUpload}), its
   * bytes copied from that handle by the transport's `putOpened` into a file of the worker's own
   * in a directory no host is given, hashed on the way, checked against the host's `digest` when
   * it gave one, and that copy uploaded (the cache keeps it by a link: nothing of the host's file
   * is taken by its path). A transport without `putOpened` is refused the call: its copy would
   * have to be made where a module can swap it (round V, V2: that fallback copied into the
   * scratch directory).
   * @throws (rejects) the refusal, a digest that is not the file's, or the upload's error
   */
  private async putHostFile(
    transport: BlobTransport,
    path: string,
    executionId: string,
    digest: Digest | undefined,
    subject: TransferSubject | undefined,
  ): Promise<Digest> {
    const putOpened = transport.putOpened?.bind(transport);
    if (putOpened === undefined) throw new Error("this worker cannot upload a module host's file");
    const handle = await this.openHostUpload(path, executionId);
    try {
      const { size } = await handle.stat();
      return await putOpened(handle, size, digest, subject).catch((error: unknown) => {
        throw error instanceof Error ? new Error(`${path}: ${error.message}`, { cause: error }) : error;
      });
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  /** Moves a blob for the running module's `ctx.artifacts` and answers the host (a call of no running module is refused). */
  private answerArtifactCall(call: ArtifactCall): void {
    const transport = this.options.artifacts?.transport;
    const answer = (
      result:
        | { ok: true; value: { sha256: string; size: number } | { path: string } | FollowedBlob }
        | { ok: false; message: string },
    ) => this.send({ type: 'artifact-answer', callId: call.callId, ...result });
    if (!transport || call.executionId !== this.running?.executionId) {
      answer({
        ok: false,
        message: 'no artifact store for this call (no orchestrator, or the module is no longer running)',
      });
      return;
    }
    // The module is the one this worker runs on the host, not what the host says it is.
    const subject: TransferSubject | undefined =
      call.subject === undefined
        ? undefined
        : 'artifact' in call.subject
          ? { module: this.running.moduleName, artifact: call.subject.artifact }
          : { module: this.running.moduleName, result: call.subject.result };
    if (call.op === 'putPacking') {
      if (!transport.putPacking) {
        answer({ ok: false, message: 'this worker cannot upload an archive as it is packed' });
        return;
      }
      if (this.packs.size >= MAX_PACKS_IN_FLIGHT) {
        this.options.logger.warn(
          { hostPid: this.pid, executionId: call.executionId, path: call.path },
          `a module host asked for more than ${MAX_PACKS_IN_FLIGHT} uploads of archives being packed at once: refused`,
        );
        answer({
          ok: false,
          message: `more than ${MAX_PACKS_IN_FLIGHT} archives uploaded as they are packed at once: not uploaded`,
        });
        return;
      }
      // Opened once here, checked on the handle, and read through it only (never by the path the
      // host named, where a link or a FIFO may be by then); closed once the upload settled.
      const opened = this.openHostUpload(call.path, call.executionId);
      const { follower, stored } = transport.putPacking(call.path, subject, opened);
      this.packs.set(call.callId, follower);
      stored.then(
        (value) => answer({ ok: true, value }),
        (error: unknown) => answer({ ok: false, message: error instanceof Error ? error.message : String(error) }),
      );
      void stored
        .catch(() => undefined)
        .then(() => opened)
        .then(
          (handle) => handle.close(),
          () => undefined,
        )
        .catch(() => undefined);
      return;
    }
    const moved =
      call.op === 'put'
        ? this.putHostFile(transport, call.path, call.executionId, call.digest, subject)
        : call.op === 'checkOut'
          ? transport.checkOut(call.sha256, subject)
          : this.follow(transport, call.callId, call.sha256, subject);
    moved.then(
      (value) => answer({ ok: true, value }),
      (error: unknown) => answer({ ok: false, message: error instanceof Error ? error.message : String(error) }),
    );
  }

  /**
   * A line on the channel was not a message (not JSON, not of a message's shape, longer than the
   * channel's line limit, or one the worker failed to act on: see `MessageLines`): something in
   * the host (a module's `fs.writeSync(3, …)`, a native addon) wrote on it, so nothing the host
   * says from now on can be taken. Its running execution ends as a crash (the caller retires the host); an idle or
   * starting host is stopped (the pool replaces it once it exited). Node's IPC channel threw the
   * parse error in the worker's event loop instead: a module could crash its worker.
   */
  private channelBrokenBy(error: unknown): void {
    if (this.channelBroken) return;
    this.channelBroken = true;
    this.channelOpen = false;
    const running = this.running;
    this.running = undefined;
    this.abandonFollows();
    this.failPacks('the channel of the module host broke while it packed the archive');
    this.options.logger.warn(
      {
        hostPid: this.pid,
        executionId: running?.executionId,
        reason: error instanceof Error ? error.message : String(error),
      },
      'a line on the channel of a module host is not a message: the host is stopped',
    );
    if (running === undefined) {
      void this.stop(this.options.killGraceMs);
      return;
    }
    running.end({
      type: 'crash',
      executionId: running.executionId,
      what: `wrote a line that is not a message on its channel with the worker (fd ${HOST_CHANNEL_FD})`,
      thrown: {
        type: error instanceof Error ? error.name : 'Error',
        message: error instanceof Error ? error.message : String(error),
        stack: null,
      },
    });
  }

  /** Whether the host process still runs (and has not been asked to stop). */
  get usable(): boolean {
    return !this.hasExited && this.stopping === undefined && this.channelOpen;
  }

  /**
   * Runs one module on the host (it must be ready and idle); resolves with how it ended: the
   * host's answer, a crash it reported, or its exit. The host holds the lease last given to it
   * ({@link ModuleHost.lease}) while the module runs.
   */
  execute(
    message: Omit<Extract<ToHost, { type: 'execute' }>, 'leaseEndsAt' | 'moduleDigest'>,
    sink: ExecutionSink,
  ): Promise<HostEnd> {
    return new Promise<HostEnd>((end) => {
      if (this.sink !== undefined) this.earlier.keep(this.sinkExecutionId!, this.sinkModuleName!, this.sink);
      this.sink = sink;
      this.sinkExecutionId = message.executionId;
      this.sinkModuleName = message.moduleName;
      for (const stream of ['stdout', 'stderr'] as const) {
        const current = this.pipeSink[stream];
        if (current === undefined || current.ended)
          this.pipeSink[stream] = { sink, executionId: message.executionId, ended: false };
        this.cutSafely(stream);
      }
      if (!this.usable) {
        end({
          type: 'exit',
          code: this.child.exitCode,
          signal: this.child.signalCode,
          stderrTail: [...this.stderrTail],
        });
        return;
      }
      this.running = { executionId: message.executionId, moduleName: message.moduleName, end };
      this.keepAlive(true);
      // Written out, not `{ ...message, leaseEndsAt }`: on Node 20 (V8 11.3) a spread followed by
      // more fields makes a new hidden class per call (issue 14, round L).
      this.send({
        type: 'execute',
        executionId: message.executionId,
        moduleName: message.moduleName,
        moduleDigest: this.options.moduleDigest(message.moduleName),
        params: message.params,
        results: message.results,
        resultFiles: message.resultFiles,
        env: message.env,
        workingDirectory: message.workingDirectory,
        secrets: message.secrets,
        leaseEndsAt: this.leaseEnd ?? null,
      });
    });
  }

  /**
   * `ctx.logger` lines of `executionId`: to its sink, the running (or last) execution's, or an
   * earlier one's whose module's code logs after it ended (kept then as the newest, so that a
   * module's interval that goes on logging keeps its own; see `EarlierSinks`).
   */
  private log(executionId: string, lines: readonly HostLogLine[]): void {
    const sink = executionId === this.sinkExecutionId ? this.sink : this.earlier.take(executionId);
    if (sink === undefined) {
      this.notShown(executionId, lines);
      return;
    }
    for (const line of lines) sink.log(line);
  }

  /**
   * Says that `lines` of an execution whose sink is no longer kept came, without their text (its
   * secrets are no longer known): at the most severe of their levels (a debug line stays debug,
   * as a kept execution's late lines do), naming its module while the host knows it, and within
   * {@link ModuleHost.notShownLimit}.
   */
  private notShown(executionId: string, lines: readonly HostLogLine[]): void {
    const { logger } = this.options;
    const level = lines.reduce((most, line) => moreSevere(most, line.level), lines[0]?.level ?? 'info');
    if (!logger.isLevelEnabled(level)) return;
    this.notShownLimit ??= new LogRateLimit((dropped, most) =>
      logger[most](
        { hostPid: this.pid, dropped },
        `${dropped} more ctx.logger line(s) of executions that ended more than ${EARLIER_SINKS} modules ago on this module host not told of: at most ${LATE_LINES_BURST} such lines per ${LATE_LINES_INTERVAL_MS / 1000} s per module host`,
      ),
    );
    if (!this.notShownLimit.admit(level, lines.length)) return;
    const module = this.earlier.moduleOf(executionId);
    logger[level](
      { hostPid: this.pid, executionId, ...(module === undefined ? {} : { module }), lines: lines.length },
      `ctx.logger lines of an execution that ended more than ${EARLIER_SINKS} modules ago on this module host: not shown (its secrets are no longer known)`,
    );
  }

  /**
   * Gives the host the worker's lease, ending at `endsAt` (ms on `monotonicNow()`'s clock), or
   * none (`undefined`): once it ends, a host that holds it — one running a module, or made to by
   * {@link ModuleHost.holdLease} — kills its process group, itself included, at once; an idle
   * host outlives it. The worker gives its lease to every host, and each renewal
   * (`ModuleHostPool.renewLease`): taking a module and going idle again write nothing here.
   */
  lease(endsAt: number | undefined): void {
    if (endsAt === this.leaseEnd || this.hasExited) return;
    this.leaseEnd = endsAt;
    this.leaseChannel?.write(leaseLine(endsAt));
  }

  /**
   * Makes the host hold its lease until it exits, whatever its main thread says: the worker is
   * stopping the group of a host that held it (its module was cancelled or timed out, crashed
   * it, or left processes behind), and no kill grace runs past the lease.
   */
  holdLease(): void {
    if (this.leaseHeld || this.hasExited) return;
    this.leaseHeld = true;
    this.leaseChannel?.write(LEASE_HOLD_LINE);
  }

  /** Aborts the running module's signal (the reason: a timeout or a cancel); the caller then stops the host. */
  cancel(executionId: string, reason: 'timeout' | 'cancel', message: string): void {
    this.send({ type: 'cancel', executionId, reason, message });
  }

  /**
   * Asks the host to stop the running module for a cancel or its timeout (`reason`; `message`: its
   * reason's) unless its code already returned or threw (`cancel-request`, `host-protocol.ts`):
   * its verdict comes to the execution's sink, `stopped` or (before) `returned`.
   */
  requestCancel(executionId: string, reason: 'timeout' | 'cancel', message: string): void {
    this.send({ type: 'cancel-request', executionId, reason, message });
  }

  /**
   * A `returned` or `stopped` naming `executionId`, not the running execution: logged (warn) the
   * first time while that execution runs (or while the host is idle), so that a module writing
   * them in a loop does not flood the worker's log; never acted on.
   */
  private strayVerdict(type: 'returned' | 'stopped', executionId: string): void {
    const during = this.running?.executionId ?? null;
    if (this.strayLoggedDuring === during) return;
    this.strayLoggedDuring = during;
    this.options.logger.warn(
      { hostPid: this.pid, named: executionId, running: during },
      `module host said '${type}' for an execution it does not run: ignored (written on its channel by a module's code?)`,
    );
  }

  /**
   * Stops the host and every process of its group: SIGTERM, SIGKILL after `graceMs` or at
   * `killBy()` if that comes first (see `stopProcessGroup`). Resolves once none of them runs.
   * Once: later calls get the same promise.
   */
  stop(graceMs: number, killBy?: () => number | undefined): Promise<GroupStop> {
    return (this.stopping ??= (async () => {
      if (this.pid <= 0) return 'terminated'; // it never started (spawn failed)
      const stopped = await stopProcessGroup(this.pid, graceMs, killBy);
      // The host is our child: its exit is known once it is reaped, just after its group is gone.
      await this.exited;
      return stopped;
    })());
  }

  /** Whether the channel keeps the worker's event loop alive: while the host starts or runs a module. */
  private keepAlive(on: boolean): void {
    if (on) this.channel?.ref();
    else this.channel?.unref();
  }

  /** Writes a message to the host, one write; a failed write closes the channel, the host's exit ends its execution. */
  private send(message: ToHost): void {
    if (!this.channelOpen) return;
    const line = messageLine(message);
    if (this.channelFd < 0) this.channel!.write(line);
    else writeLine(this.channel!, this.channelFd, line);
  }

  private readLines(stream: 'stdout' | 'stderr'): void {
    const source = this.child[stream]!;
    (source as unknown as { unref(): void }).unref();
    const mark = Buffer.from(OUTPUT_END_MARK);
    const nonce = Buffer.from(`${this.markNonce} `);
    // A block of whole lines per read of the pipe, as bytes (see ByteLineSplitter): not decoded
    // here (the shipper does, when it makes batches, off the module's way), the end mark looked
    // for once per block.
    const emit = (block: Buffer): void => {
      if (block.length === 0) return;
      let at = block.indexOf(mark);
      // A module's line that only looks like a mark (without this host's nonce) is text.
      while (at >= 0 && !block.subarray(at + mark.length, at + mark.length + nonce.length).equals(nonce))
        at = block.indexOf(mark, at + 1);
      if (at >= 0) {
        const newline = block.indexOf(0x0a, at);
        const lineEnd = newline < 0 ? block.length : newline;
        const ended = block.toString('utf8', at + mark.length + nonce.length, lineEnd).replace(/\r$/, '');
        // The lines before the mark's line, then what the module wrote without a newline at its
        // end, which precedes the mark on its line (ended with one here).
        if (at > 0)
          emit(block[at - 1] === 0x0a ? block.subarray(0, at) : Buffer.concat([block.subarray(0, at), NEWLINE]));
        this.endPipe(stream, ended);
        // The lines after the mark's line belong to whoever the pipe carries now.
        if (newline >= 0) emit(block.subarray(newline + 1));
        return;
      }
      if (stream === 'stderr') this.keepStderrTail(block);
      const current = this.pipeSink[stream];
      if (current) current.sink.output(stream, block);
      else this.options.logger.info({ hostPid: this.pid, stream }, block.toString('utf8', 0, block.length - 1));
    };
    // An unfinished line given in pieces of at most LIMITS.output.maxLineLength as it comes, as a
    // command's is.
    const lines = new ByteLineSplitter(emit);
    this.splitters[stream] = lines;
    source.on('data', (chunk: Buffer) => {
      this.bytesRead[stream] += chunk.length;
      if (chunk.length >= LIBUV_READ_BYTES) this.fullRead[stream] = true;
      lines.push(chunk);
    });
    source.on('end', () => {
      lines.flush();
      // The host is gone: nothing more comes on this pipe.
      this.pipeSink[stream]?.sink.outputEnded(stream);
    });
  }

  /**
   * The host said `done` without end marks (see `marked` in FromHost's `done`) and the pipes were
   * read to where it sent it (see {@link ModuleHost.answerUnmarked}): `executionId`'s output ends
   * on both, with the module's last line if it wrote one without a newline.
   */
  private endUnmarked(executionId: string): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const current = this.pipeSink[stream];
      if (current === undefined || current.executionId !== executionId || current.ended) continue;
      this.splitters[stream]?.flush();
      this.endPipe(stream, executionId);
    }
  }

  /**
   * Ends an execution whose host said `done` without end marks, then answers it (`end`): run as a
   * `setImmediate` from the `done` message's handler, in the check phase of the event loop's turn
   * that read `done`, again in the next turn's while a pipe may hold more. By then the worker has
   * read every byte written to the host's pipes before `done`: the host wrote them (or its
   * children did, and ended) before it sent `done` on its channel, so the kernel had the
   * pipes readable before the channel; the poll that reports the channel (libuv's `epoll_wait`,
   * level-triggered) reports a pipe that holds anything in the same batch, and libuv reads each
   * reported pipe in the same poll phase, a flowing stream passing each read on at once;
   * `setImmediate` callbacks run after the poll phase. libuv reads a pipe until a read comes back
   * short (the socket is empty), but at most 32 reads of {@link LIBUV_READ_BYTES} per poll
   * (2 MiB), and a socket's buffer, about 208 KiB by default, can be raised past that
   * (`net.core.wmem_default`, or a module running as root setting `SO_SNDBUFFORCE` on fd 1): so
   * while a pipe's last read since the previous look filled libuv's buffer, this looks again in
   * the next turn, whose poll reads the pipe on (level-triggered), and answers after a turn in
   * which neither pipe's last read was full. No size is a limit; a module that wrote nothing or
   * less than 64 KiB at its end costs one `setImmediate`. Past {@link MOST_PIPE_BYTES} per pipe read
   * since `done` (more than the two sockets can hold), a process the host does not know of writes on: answered,
   * its further lines are late ones.
   * No read of the pipes here: a non-blocking read of an empty pipe throws inside node (`EAGAIN`,
   * 2.2 µs each), and most modules write nothing (round H read both pipes to their end here, up to
   * 4 MiB: 5 % of the workers' main threads, issue 14, round I).
   */
  private static answerUnmarked(
    host: ModuleHost,
    message: Extract<FromHost, { type: 'done' }>,
    end: (end: HostEnd) => void,
    readBefore: number,
  ): void {
    const { fullRead, bytesRead } = host;
    if (fullRead.stdout || fullRead.stderr) {
      fullRead.stdout = fullRead.stderr = false;
      if (bytesRead.stdout + bytesRead.stderr - readBefore <= 2 * MOST_PIPE_BYTES) {
        setImmediate(ModuleHost.answerUnmarked, host, message, end, readBefore);
        return;
      }
    }
    host.endUnmarked(message.executionId);
    end(message);
  }

  /**
   * Pipe `stream` has carried all of `executionId`'s lines (its end mark was read, or the pipe was
   * read to its end after the host's `done`): that execution's output on it ends, and the pipe
   * carries the execution that started meanwhile, if one did. Nothing when the pipe carries
   * another execution (a late mark).
   */
  private endPipe(stream: 'stdout' | 'stderr', executionId: string): void {
    const current = this.pipeSink[stream];
    if (current === undefined || current.executionId !== executionId || current.ended) return;
    current.ended = true;
    current.sink.outputEnded(stream);
    if (this.sink !== undefined && this.sinkExecutionId !== executionId) {
      this.pipeSink[stream] = { sink: this.sink, executionId: this.sinkExecutionId!, ended: false };
      this.cutSafely(stream);
    }
  }

  /**
   * Gives pipe `stream`'s splitter the secret values of the execution it carries and of the
   * running one (its lines may follow in the same read): set when either changes, not per read.
   */
  private cutSafely(stream: 'stdout' | 'stderr'): void {
    const splitter = this.splitters[stream];
    if (splitter === undefined) return;
    const carried = this.pipeSink[stream]?.sink.secrets ?? [];
    const running = this.sink?.secrets ?? [];
    // Longest first, each once, as secretSafeCut takes them (two executions usually share values).
    splitter.secrets =
      running === carried || running.length === 0
        ? carried
        : [...carried, ...running.filter((value) => !carried.some((known) => known.equals(value)))].sort(
            (a, b) => b.length - a.length,
          );
  }

  /** Keeps the last {@link STDERR_TAIL_LINES} lines of a block of the host's stderr (its last few KiB decoded). */
  private keepStderrTail(block: Buffer): void {
    const from = Math.max(0, block.length - STDERR_TAIL_BYTES);
    const lines = block.toString('utf8', from, block.length - 1).split('\n');
    // A block cut at its start: its first line is a piece.
    if (from > 0) lines.shift();
    this.stderrTail.push(...lines.slice(-STDERR_TAIL_LINES).map((line) => line.replace(/\r$/, '')));
    if (this.stderrTail.length > STDERR_TAIL_LINES)
      this.stderrTail.splice(0, this.stderrTail.length - STDERR_TAIL_LINES);
  }
}
