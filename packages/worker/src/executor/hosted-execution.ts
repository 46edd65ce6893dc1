import { rm } from 'node:fs/promises';
import type { AnyModule, ModuleLogger } from '@mpd/pipeline';
import type { Logger } from 'pino';
import { ExecutionCancelledError, ModuleTimeoutError } from '../errors.js';
import {
  beginExecution,
  createExecution,
  type Execution,
  type ExecutionOptions,
  type ExecutionOutcome,
  type ExecutionFrame,
  type ExecutionRequest,
  type ModuleEnd,
} from './execution.js';
import type { ExecutionStop } from './execution-stop.js';
import type { HostLogLine } from './host-protocol.js';
import type { ExecutionSink, HostEnd, ModuleHost } from './module-host.js';
import { goesByReference, resultFilePath } from './result-file.js';
import { type ResultFile, storeHostResult } from './result-references.js';
import type { ModuleHostPool } from './module-host-pool.js';
import { toModuleLogger } from './module-logger.js';
import { secretBytes, writeLineBytes } from './module-output.js';
import type { ThrownDescription } from './values-as-text.js';

/** What an execution in a module host takes besides the worker's {@link ExecutionOptions}. */
export interface HostedExecutionOptions extends ExecutionOptions {
  pool: ModuleHostPool;
  /** Results over this (UTF-8 bytes of their JSON) go by reference (`--inline-result-size`), with `artifacts`. */
  inlineResultBytes: number;
  /** The hosts' heap limit (MiB), named in the message of a module that exhausts it. */
  heapLimitMb: number | undefined;
  /**
   * The worker's kill grace (ms, `--kill-grace`): also how long a cancel waits for its host's
   * verdict (`stopped`), or, once the module's code ended, for its host's `done`, before it stops
   * the host (see `ExecutionStop.heldCancelGraceMs`).
   */
  killGraceMs: number;
}

/** Node's words when V8 gives up on a full heap (`FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory`). */
const OUT_OF_MEMORY = /heap out of memory|Reached heap limit|Allocation failed/i;

/** What a host's lease watchdog writes before it kills the host's group (`module-host-lease.ts`). */
const LEASE_ENDED = /its lease ended/;

/**
 * Starts one execution of `module` in a module host of `options.pool` (`isolation: 'process'`):
 * the worker arms its timeout and masks its lines; the host runs it. A stop (a cancel, or the
 * module's timeout) is decided by the host, which alone knows whether the module's code has
 * returned (its `returned` may cross the stop on the channel): asked (`cancel-request`,
 * `host-protocol.ts`), it aborts the module's signal and says `stopped`, on which the worker stops
 * the host's process group (SIGTERM, SIGKILL after the kill grace) and answers once the group is
 * gone (Cancelled, or TimedOut); or it has said `returned` before: the execution is answered with
 * the host's `done` (a success kept, stored once, not turned into Cancelled or TimedOut and run
 * again) if it comes within the worker's kill grace of the stop. With no verdict within the kill
 * grace the worker kills the host's group at once for a cancel (SIGKILL: it had its grace), and
 * stops it for a timeout (SIGTERM, SIGKILL after the kill grace: the module's processes get their
 * cleanup time, so a blocked host is gone within 2 graces of its timeout); with no `done` it
 * stops it (SIGTERM, SIGKILL after the kill grace): answered Cancelled (or TimedOut), saying so
 * when the code had returned (nothing was stored, a success is stored only after `done`). A
 * `done` with no `returned` before it (the host failed before the module's code ran: the pipeline
 * file changed, a dependency's result unreadable) while a cancel waits for its verdict is answered
 * as that cancel, not as that failure (round X, X5); while its timeout waits, as that failure
 * (round Z: TimedOut lost its message). A timeout while a cancel waits for its verdict changes
 * nothing: the cancel decides (Cancelled, never TimedOut; or the module's outcome, its code having
 * returned first), within the cancel's grace (round Z); the module's timeout once the worker
 * read `returned` waits the kill grace for its `done`, then stops a host whose end hangs (answered
 * TimedOut, saying so). A host
 * that crashes or exits fails this module alone, with a message naming what happened.
 */
export function startHostedExecution(
  module: AnyModule,
  request: ExecutionRequest,
  options: HostedExecutionOptions,
  resultFiles: Readonly<Record<string, ResultFile>> | null = null,
): Execution {
  return createExecution((stop, settle) => runHosted(module, request, options, resultFiles, stop, settle));
}

async function runHosted(
  module: AnyModule,
  request: ExecutionRequest,
  options: HostedExecutionOptions,
  resultFiles: Readonly<Record<string, ResultFile>> | null,
  stop: ExecutionStop,
  settle: (outcome: ExecutionOutcome) => void,
): Promise<void> {
  // Usually an idle host at once: the pool's hosts are started ahead. The module's clock starts
  // once it has one.
  let host = options.pool.acquireIdle();
  if (host === undefined) {
    try {
      host = await options.pool.acquire(stop.signal);
    } catch (error) {
      const frame = beginExecution(module, request, options, stop);
      settle(
        frame.end({
          ok: false,
          error: stop.aborted
            ? stop.reason
            : new Error(
                `Module '${module.name}' could not run: no module host could start: ${(error as Error).message}`,
              ),
        }),
      );
      return;
    }
  }
  const frame = beginExecution(module, request, options, stop);
  stop.heldCancelGraceMs = options.killGraceMs;
  if (stop.aborted) {
    // Cancelled as the host came: it never ran anything of this module.
    options.pool.release(host);
    settle(frame.end({ ok: false, error: stop.reason }));
    return;
  }
  // A cancel is put to the host, which alone knows whether the module's code has returned (its
  // `returned` may be on its way): it stops the module and says `stopped` (the cancel stops the
  // execution), or has said `returned` (its outcome stands: `done` decides, see
  // ExecutionStop.codeEnded); no verdict within the kill grace: stopped all the same. Its timeout
  // is put to it the same way (ExecutionStop.timeOut).
  const aborted = new Promise<{ type: 'aborted' }>((resolve) => stop.onAbort(() => resolve({ type: 'aborted' })));
  const sink = new FrameSink(frame, stop, options.logger);
  const requesting = host;
  stop.askCancel = (reason) => {
    const timedOut = reason instanceof ModuleTimeoutError;
    if (timedOut)
      frame.log.info(
        { graceMs: options.killGraceMs },
        'the module timed out: its module host decides (it stops the module, or its code had returned: its outcome stands)',
      );
    requesting.requestCancel(request.executionId, timedOut ? 'timeout' : 'cancel', (reason as Error).message);
  };
  const ended = await Promise.race([
    host.execute(
      {
        type: 'execute',
        executionId: request.executionId,
        moduleName: module.name,
        params: request.params,
        results: request.dependencyResults,
        resultFiles,
        env: request.environmentVariables,
        workingDirectory: request.workingDirectory ?? options.workingDirectory,
        secrets: frame.secrets,
      },
      sink,
    ),
    aborted,
  ]);

  // A stop put to the host before its end came (one after it is only kept: see below).
  const heldBeforeEnd = stop.heldCancel;
  // Its end came first: a held cancel's grace stops nothing now (not the result's store below).
  if (ended.type !== 'aborted') stop.ended();
  let result: ModuleEnd;
  if (ended.type === 'aborted') {
    // As the stop came: `returned` may be read while the host is stopped.
    const codeOk = sink.codeOk;
    // A held stop put to the host (the code not ended) is the answer: stopped at its grace's end
    // or at the host's `stopped` (a timeout meanwhile stops nothing: `ExecutionStop.timeOut`). A
    // cancel stays a cancel (Cancelled: run again), never TimedOut (a failure its retry policy counts).
    const reason = (stop.heldCancel !== undefined && codeOk === undefined ? stop.heldCancel : stop.reason) as Error;
    // The held stop's grace ran out with no verdict (nor `returned`): the host had its kill grace
    // to answer already, and one that could not (its main thread held) runs no SIGTERM handler
    // either. A cancel: SIGKILL at once, not SIGTERM and a second grace (2 × the kill grace). A
    // timeout: SIGTERM, SIGKILL after the kill grace, as before round X (README: `--kill-grace`),
    // so that the module's processes get their cleanup time (a blocked host: up to 2 graces after
    // the timeout; round X, W-A).
    const noVerdict = codeOk === undefined && !sink.stoppedFirst && stop.reason === stop.heldCancel;
    const timedOut = reason instanceof ModuleTimeoutError;
    if (noVerdict)
      frame.log.warn(
        { hostPid: host.pid, graceMs: options.killGraceMs },
        `its module host gave no verdict on the ${timedOut ? 'timeout' : 'cancel'} within the kill grace (its main thread held?): stopping it`,
      );
    host.cancel(request.executionId, timedOut ? 'timeout' : 'cancel', reason.message);
    await stopHost(
      options.pool,
      host,
      frame.log,
      'stopping the module and every process it started',
      noVerdict && !timedOut,
    );
    await removeResultFile(options, request.executionId);
    // A stop of a module whose code had ended (its host's end hung): its timeout, or a held
    // cancel past its grace. Said so; a cancel stays a cancel (run again), a timeout a timeout.
    result = { ok: false, error: stoppedError(reason, codeOk, options.killGraceMs) };
  } else if (ended.type === 'done') {
    // Usually done already: a host that wrote no end marks had its pipes read to their end with
    // its answer (see `marked` in FromHost's `done`). One that did wrote them on its two pipes
    // before its answer on the host channel (fd 3), but the three are read as they come: the marks are
    // read in the same turn of the event loop, maybe just after the answer. Waiting for them that
    // turn at most lets the answer say the output is complete (`Mpd-Output: none` for a module
    // that wrote nothing: no final batch, issue 14).
    if (!sink.done) await Promise.race([sink.read, new Promise((resolve) => setImmediate(resolve))]);
    if (ended.leftoverChildren !== 0) {
      await stopHost(
        options.pool,
        host,
        frame.log,
        ended.leftoverChildren === null
          ? 'the module ended but its host could not tell whether it left processes running (reading /proc failed): stopping its process group'
          : `the module ended but left ${ended.leftoverChildren} process(es) running: stopping them`,
      );
    } else {
      options.pool.release(host);
    }
    if (
      heldBeforeEnd !== undefined &&
      sink.codeOk === undefined &&
      !(heldBeforeEnd instanceof ModuleTimeoutError && !ended.ok)
    ) {
      // No `returned` before its `done`: the module's code never ran (its host failed before:
      // `checkedModule`, `readResultFiles`), and a cancel put to the host waits for its verdict:
      // the two crossed. That cancel is the answer (Cancelled: run again, as when the host reads
      // it first and says `stopped`), not the host's failure. Its timeout there is not: the host's
      // own failure is answered, with its message (round Y, review R2 LOW b: TimedOut lost the
      // message, e.g. "Pipeline file … changed", and its retry policy ran the module again).
      result = { ok: false, error: heldBeforeEnd as Error };
    } else if (ended.ok) {
      const stored = hostResult(module.name, ended, options);
      // Awaited only when there is something to store: no microtask per module for an inline result (issue 14).
      // A store that rejects all the same (`storeHostResult` answers its failures) fails the
      // module: the execution is answered and its slot freed whatever happens.
      result =
        stored instanceof Promise ? await stored.catch((error: unknown) => notStoredEnd(module.name, error)) : stored;
    } else result = { ok: false, thrown: ended.thrown };
  } else {
    // A host that ends without its `done` while a cancel is held (its verdict awaited, or it came
    // too late to stop the code; the worker closing, its lease ending, its group stopped: killed
    // while stuck in the module's end, or crashed as its signal was aborted) answers that cancel: the orchestrator had given the
    // attempt up and runs it again (as before `returned` existed), where the host's end, taken as
    // the module's own failure, failed the run (NO_RETRY). Nothing of the module was stored: a
    // success is stored only after `done`.
    result =
      stop.heldCancel !== undefined
        ? { ok: false, error: stop.heldCancel }
        : { ok: false, thrown: describeHostEnd(module.name, ended, options.heapLimitMb) };
    await stopHost(options.pool, host, frame.log, 'the module host ended abnormally: stopping what is left of it');
    await removeResultFile(options, request.executionId);
  }
  if (stop.heldCancel !== undefined && !stop.aborted && ended.type === 'done' && sink.codeOk !== undefined)
    frame.log.info(
      { reason: (stop.heldCancel as Error).message },
      `${stop.heldCancel instanceof ModuleTimeoutError ? 'its timeout' : 'a cancel'} came after the module's code had ended: its outcome stands (it is not run again for it)`,
    );
  // Answered once the module's processes are gone: the orchestrator may start a dependant, an
  // always-run cleanup or another attempt as soon as it has the answer.
  settle(frame.end(result, sink.done ? undefined : sink.read));
}

/**
 * The error a stopped execution is answered with: its stop's `reason` as it is while its module's
 * code had not ended (`codeOk` undefined); once it had returned (`codeOk`) or thrown, its timeout
 * ({@link endTimedOut}: TimedOut) or its held cancel past the kill grace `graceMs`
 * ({@link heldCancelled}), each saying so. A cancel stays a cancel (Cancelled: the orchestrator
 * runs it again), never TimedOut (a failure its retry policy counts), and a timeout a timeout.
 */
export function stoppedError(reason: Error, codeOk: boolean | undefined, graceMs: number): Error {
  if (codeOk === undefined) return reason;
  return reason instanceof ModuleTimeoutError ? endTimedOut(reason, codeOk) : heldCancelled(reason, codeOk, graceMs);
}

/**
 * The timeout `reason` of a module whose code had returned (`codeOk`) or thrown, but whose host did
 * not send its `done` within the module's timeout (its end hung: its `ctx.artifacts` calls ended,
 * its result written): a `ModuleTimeoutError` saying so.
 */
function endTimedOut(reason: Error, codeOk: boolean): ModuleTimeoutError {
  return new ModuleTimeoutError(
    `${reason.message}: its code had ${codeOk ? 'returned' : 'thrown'}, but its module host did not end it in time (ending its ctx.artifacts calls, writing its result)`,
  );
}

/**
 * The held cancel `reason` of a module whose host said its code had returned (`codeOk`) or thrown,
 * but did not send its `done` within the kill grace (`graceMs`) after the cancel: an
 * `ExecutionCancelledError` saying so (its module host stopped; run again, as any cancel's).
 */
function heldCancelled(reason: Error, codeOk: boolean, graceMs: number): ExecutionCancelledError {
  return new ExecutionCancelledError(
    `${reason.message}: its module host said its code had ${codeOk ? 'returned' : 'thrown'}, but did not end it within ${graceMs} ms (the kill grace) after the cancel`,
  );
}

/**
 * The end of a module whose host answered `ended` (a success): its result inline; or, when it
 * goes by reference, stored (once the host is back in the pool or stopped): from the file the
 * host wrote it to (its path checked with the message, see `fromHostProblem`), uploaded without
 * the worker reading it; from its text if a host sent it inline all the same.
 */
function hostResult(
  moduleName: string,
  ended: Extract<HostEnd, { type: 'done'; ok: true }>,
  options: HostedExecutionOptions,
): ModuleEnd | Promise<ModuleEnd> {
  const { artifacts } = options;
  if ('resultFile' in ended) {
    // Not taken from a host given no scratch directory (`fromHostProblem`): never here.
    if (artifacts === undefined) return { ok: false, error: new Error('a result file without an artifact store') };
    return storeHostResult(moduleName, { file: ended.resultFile }, artifacts, options.maxResultBytes);
  }
  if (artifacts !== undefined && goesByReference(ended.resultText, options.inlineResultBytes))
    return storeHostResult(moduleName, { text: ended.resultText }, artifacts, options.maxResultBytes);
  return { ok: true, value: ended.resultText };
}

/** The end of module `moduleName` whose result's store rejected with `error`. */
function notStoredEnd(moduleName: string, error: unknown): ModuleEnd {
  return {
    ok: false,
    thrown: {
      type: 'ResultReferenceError',
      message: `Module '${moduleName}' returned a result that could not be stored: ${error instanceof Error ? error.message : String(error)}`,
      stack: null,
    },
  };
}

/**
 * Removes the result file a host may have written for execution `executionId` and never handed
 * over (its module was stopped, or its host ended, between the write and its `done`): once its
 * group is gone, so nothing writes it again. Only on those ends (a module that ended well costs
 * no `unlink`); nothing without artifacts (the host writes no file then).
 */
async function removeResultFile(options: HostedExecutionOptions, executionId: string): Promise<void> {
  if (options.artifacts !== undefined)
    await rm(resultFilePath(options.artifacts.scratchDir, executionId), { force: true }).catch(() => undefined);
}

/**
 * Where the lines of a module running in a host go: masked, through the execution's logger. An
 * instance rather than two closures, and the module's logger made at its first line: most
 * modules log little, and each closure costs a `defineProperty` under tsx.
 */
class FrameSink implements ExecutionSink {
  private moduleLogger: ModuleLogger | undefined;
  private readonly ended = new Set<'stdout' | 'stderr'>();
  private readDone!: () => void;
  /** Resolves once both of the host's pipes were read to this module's end. */
  readonly read = new Promise<void>((resolve) => (this.readDone = resolve));
  /** Both of the host's pipes were read to this module's end (`read` resolved). */
  get done(): boolean {
    return this.ended.size === 2;
  }

  /** The execution's secret values, UTF-8 (see `ExecutionSink.secrets`); none: undefined. */
  readonly secrets: readonly Buffer[] | undefined;
  /** Whether the module's code returned (true) or threw (false), once its host said so; undefined before. */
  codeOk: boolean | undefined;
  /** Whether the host said `stopped` before any `returned` (its verdict: the code was stopped). */
  stoppedFirst = false;
  /** Whether a `stopped` with no cancel asked was logged (see {@link FrameSink.stopped}). */
  private unaskedStoppedLogged = false;

  constructor(
    private readonly frame: ExecutionFrame,
    private readonly stop: ExecutionStop,
    private readonly workerLog: Logger,
  ) {
    this.secrets = secretBytes(frame.secrets);
  }

  /**
   * The module's code ended (`returned`): from now a cancel leaves its outcome to its host's `done`.
   * The host's first verdict only (this or `stopped`): a second one of the same execution (its
   * code can write on the host channel too) changes nothing.
   */
  returned(ok: boolean): void {
    if (this.codeOk !== undefined || this.stoppedFirst) return;
    this.codeOk = ok;
    this.stop.codeEnded = true;
    // Stopped already (its timeout, or a held cancel past its grace): that stop stands.
    if (!this.stop.aborted && this.workerLog.isLevelEnabled('debug'))
      this.frame.log.debug(
        { ok },
        `the module's code ${ok ? 'returned' : 'threw'}: a cancel no longer replaces its outcome`,
      );
  }

  /**
   * The host stopped the module before its code ended (`stopped`): a cancel it was asked about
   * stops the execution now (`ExecutionStop.hostStopped`). The host's first verdict only, and only
   * while a cancel is put to it: a `stopped` no one asked for (its module's code can write on the
   * host channel) would make the host's own `returned` ignored; it is logged (warn, once per
   * execution, unless the execution was stopped already: its host says `stopped` at the worker's
   * `cancel` order) and ignored.
   */
  stopped(): void {
    if (this.codeOk !== undefined || this.stoppedFirst) return;
    if (this.stop.heldCancel === undefined) {
      if (!this.stop.aborted && !this.unaskedStoppedLogged) {
        this.unaskedStoppedLogged = true;
        this.frame.log.warn(
          "module host said 'stopped' with no cancel asked: ignored (written on its channel by the module's code?)",
        );
      }
      return;
    }
    this.stoppedFirst = true;
    this.stop.hostStopped();
  }

  outputEnded(stream: 'stdout' | 'stderr'): void {
    this.ended.add(stream);
    if (this.done) this.readDone(); // once `ended` holds both it stays so: resolving again does nothing
  }

  log(line: HostLogLine): void {
    this.moduleLogger ??= toModuleLogger(
      this.frame.log,
      this.frame.mask,
      this.frame.output,
      () => this.frame.outputClosed,
    );
    this.moduleLogger[line.level](line.message, line.fields);
  }

  /**
   * Lines of the host's stdout or stderr: the module's `console.*`, and the lines of its commands;
   * a block of whole lines per read of the pipe, as bytes (each line ending with `\n`), kept as
   * they are and masked when shipped (see `OutputWriter.writeBytes`).
   */
  output(stream: 'stdout' | 'stderr', lines: Buffer): void {
    // At debug: at info, a module printing 200,000 lines wrote 200,000 lines to the worker's log too.
    if (this.workerLog.isLevelEnabled('debug'))
      this.frame.log.debug({ stream }, this.frame.mask(lines.toString('utf8', 0, lines.length - 1)));
    writeLineBytes(this.frame.output, stream, lines, this.frame.mask);
  }
}

/**
 * Retires `host` (its group stopped, a fresh host started) and logs why, and whether SIGKILL was
 * needed. `killNow`: SIGKILL at once, no grace (a host that had its kill grace already, to answer
 * a cancel). @default false
 */
async function stopHost(
  pool: ModuleHostPool,
  host: ModuleHost,
  log: ReturnType<typeof beginExecution>['log'],
  why: string,
  killNow = false,
): Promise<void> {
  log.info({ hostPid: host.pid }, why);
  if ((await pool.retire(host, killNow ? 0 : undefined)) !== 'killed') return;
  if (killNow)
    log.warn({ hostPid: host.pid }, 'its module host had its kill grace for the cancel already: sent SIGKILL at once');
  else log.warn({ hostPid: host.pid }, 'processes of the module were still running after the kill grace: sent SIGKILL');
}

/**
 * What a module's failure says when its host crashed (an error escaped it) or exited under it
 * (`process.exit()`, a signal, an exhausted heap). Masked later, with the rest of the answer.
 */
export function describeHostEnd(
  moduleName: string,
  ended: Exclude<HostEnd, { type: 'done' }>,
  heapLimitMb: number | undefined,
): ThrownDescription {
  if (ended.type === 'crash') {
    const { thrown } = ended;
    const detail = thrown.stack === null ? thrown.message : `${thrown.type}: ${thrown.message}`;
    return {
      message: `Module '${moduleName}' crashed its module host: it ${ended.what}: ${detail}`,
      type: thrown.type,
      stack: thrown.stack,
    };
  }
  const stderr = ended.stderrTail.join('\n');
  let how: string;
  if (LEASE_ENDED.test(stderr)) {
    how =
      "its worker's lease ended while it ran (the worker did not renew it in time: frozen, stalled or cut off from the orchestrator), so its module host killed its process group";
  } else if (OUT_OF_MEMORY.test(stderr)) {
    const limit =
      heapLimitMb === undefined
        ? "Node's default heap limit; set one with --module-heap-limit"
        : `the heap limit is ${heapLimitMb} MiB, --module-heap-limit`;
    how = `it ran out of memory (JavaScript heap out of memory; ${limit})`;
  } else if (ended.code !== null) {
    how = `its module host exited with code ${ended.code} while it ran (process.exit() in the module?)`;
  } else {
    how = `its module host was killed by ${ended.signal} while it ran (by the module, by someone else, or by the kernel's out-of-memory killer)`;
  }
  const lines = ended.stderrTail.slice(-5).join(' | ');
  return {
    message: `Module '${moduleName}' ended abnormally: ${how}${lines ? `; last lines on its stderr: ${lines}` : ''}`,
    type: 'ModuleHostExited',
    stack: null,
  };
}
