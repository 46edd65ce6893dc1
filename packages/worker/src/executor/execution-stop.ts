/**
 * How an execution is stopped (a cancel, its timeout, the worker going): an `AbortController`
 * whose `signal` is the module's `ctx.signal`, with whether it was stopped, why, and who is told
 * beside it, each read without the signal.
 *
 * Node makes an `AbortController`'s signal only when it is first read, or at `abort()`: Node
 * 20.20.2's `lib/internal/abort_controller.js` (read from this machine's node binary) has
 * `get signal() { this.#signal ??= createAbortSignal(); … }`, since nodejs/node#45525 (2022, before
 * Node 20.0; this package needs ^20.19 or ≥ 22.12). So this class no longer makes one lazily of its
 * own, as it did until round H. What it adds is the rest: an execution in a module host usually
 * never reads its signal, and the execution's own waits for its stop (`onAbort`, `aborted`,
 * `reason`) would otherwise read it and listen on it. Measured per execution (round H, 1,000,000
 * each, tsx): made with one `onAbort` listener and never stopped, as most are, 26 ns (28 ns with
 * round G's own lazy signal); with the signal read and listened on instead, 4.7 µs. Stopped, a
 * signal never read is made at the `abort()` (3.9 µs, where round G's made none: paid only by a
 * cancelled or timed-out execution).
 */
export class ExecutionStop extends AbortController {
  /** Whether it was stopped. */
  aborted = false;
  /** Why (an `ExecutionCancelledError`, a `ModuleTimeoutError`…), once aborted. */
  reason: unknown;
  /**
   * Runs the abort of the signal, and so its 'abort' listeners, in the context they belong to:
   * the module's, where `console.*` is its output with `isolation: 'none'` (an `AsyncLocalStorage`
   * follows promises, timers and callbacks, but an `EventTarget` calls its listeners in the
   * context of whoever dispatches: the worker's timer, the cancel route). @default where
   * {@link ExecutionStop.abort} is called
   */
  signalAbortsWithin: ((abort: () => void) => void) | undefined;
  /**
   * Set once the module's code returned or threw, as its module host said (`returned`,
   * `host-protocol.ts`): from then a cancel ({@link ExecutionStop.cancel}) no longer stops the
   * execution, its outcome stands (Temporal's rule: a completion wins over a later cancel); nor
   * does its timeout ({@link ExecutionStop.timeOut}) before the kill grace ends. @default false
   */
  codeEnded = false;
  /**
   * How a cancel that comes before {@link ExecutionStop.codeEnded} is put to the module's host,
   * which decides it (`cancel-request`, `host-protocol.ts`): the worker cannot tell whether the
   * host's `returned` is on its way (the two crossing on the channel), the host can. Set by a
   * hosted execution once its `execute` is sent; called with the cancel's reason, once. The host
   * answers `stopped` ({@link ExecutionStop.hostStopped}: the cancel stops the execution now) or
   * has said `returned` before (its outcome stands). The module's timeout is put to it the same
   * way ({@link ExecutionStop.timeOut}, with its `ModuleTimeoutError`). Undefined (in-process, or
   * no host yet): a cancel or a timeout stops at once. @default undefined
   */
  askCancel: ((reason: unknown) => void) | undefined;
  /**
   * The first cancel not acted on at once: one that came once {@link ExecutionStop.codeEnded} was
   * set, or one put to the host ({@link ExecutionStop.askCancel}) whose verdict is awaited; or the
   * timeout put to the host ({@link ExecutionStop.timeOut}), held as a cancel is. The answer when
   * the execution ends without its host's `done`, or (a cancel) with a `done` but no `returned`
   * before it (the module's code never ran: `hosted-execution.ts`; a held timeout leaves that
   * `done`'s failure the answer); it stops the execution when the host says `stopped`, or once
   * {@link ExecutionStop.heldCancelGraceMs} passed. A timeout coming while a cancel is held
   * before the code ended changes nothing ({@link ExecutionStop.timeOut} returns `'cancel-decides'`).
   */
  heldCancel: unknown;
  /**
   * How long (ms) a held cancel ({@link ExecutionStop.heldCancel}) waits for the host's verdict
   * and the execution's end ({@link ExecutionStop.ended}) before it stops it all the same, as a
   * cancel at once does (with its reason): in a module host, the worker's kill grace
   * (`--kill-grace`, 10 s by default; `hosted-execution.ts`). So a host stuck in a module's end
   * or a blocked main thread that never answers, or a module that forged its host's `returned`
   * (any code can write on the host channel), holds a cancel that long at most, not the rest of
   * its timeout. As a Temporal activity's completion wins over a cancel only if it comes before
   * the cancel's deadline (its heartbeat timeout). Undefined: a held cancel waits for the end or
   * the timeout. @default undefined
   */
  heldCancelGraceMs: number | undefined;
  private heldCancelTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set by {@link ExecutionStop.ended}: the answer is known, a cancel changes nothing. */
  private isEnded = false;
  private listeners: (() => void)[] | undefined;

  /**
   * A cancel: stops with `reason` (an `ExecutionCancelledError`) as {@link ExecutionStop.abort}
   * does, unless the module's host decides it ({@link ExecutionStop.askCancel}, asked now) or the
   * module's code has ended ({@link ExecutionStop.codeEnded}): then it is kept as
   * {@link ExecutionStop.heldCancel} (the first only), and stops it once
   * {@link ExecutionStop.heldCancelGraceMs} passed unless it ended before (or at the host's
   * `stopped`, {@link ExecutionStop.hostStopped}). Once ended, only kept. Nothing once stopped.
   */
  cancel(reason: unknown): void {
    if (this.aborted) return;
    const hostDecides = !this.codeEnded && !this.isEnded && this.askCancel !== undefined;
    if (!this.codeEnded && !this.isEnded && !hostDecides) {
      this.abort(reason);
      return;
    }
    if (this.heldCancel !== undefined) return;
    this.heldCancel = reason;
    if (this.isEnded) return;
    if (this.heldCancelGraceMs !== undefined)
      this.heldCancelTimer = setTimeout(() => this.abort(reason), this.heldCancelGraceMs);
    if (hostDecides) this.askCancel!(reason);
  }

  /**
   * Its timeout: stops with `reason` (a `ModuleTimeoutError`) as {@link ExecutionStop.abort} does,
   * unless the module's host decides it as it decides a cancel ({@link ExecutionStop.askCancel},
   * asked now; round X, X5): the worker cannot tell whether the host's `returned` is on its way,
   * and a module whose code returned was answered TimedOut, and run again by its retry policy.
   * Then it is kept as {@link ExecutionStop.heldCancel}: the host's `stopped` stops the execution
   * with it (TimedOut), its `returned` first leaves the outcome to its `done`, and
   * {@link ExecutionStop.heldCancelGraceMs} bounds both waits, as a held cancel's. Once the
   * module's code ended (its `returned` read, its host still ending it: writing its result), it
   * is held as a cancel then is (the first held stop kept, its grace armed unless one runs): its
   * `done` within the grace decides, and a host whose end hangs is stopped at the grace's end
   * (round X, W-A M2: it stopped at once, and a module that had just returned was answered
   * TimedOut and run again). While a cancel put to the host waits for its verdict, it does
   * nothing: that cancel's verdict decides (`stopped`: Cancelled; `returned` first: the module's
   * own outcome, from its `done`), within that cancel's grace (round Y, review R2 LOW a: it
   * stopped the execution at once, answered as the cancel, and a module whose code was returning
   * was run again). Stops at once once ended, with no host to ask, or with no grace
   * ({@link ExecutionStop.heldCancelGraceMs} undefined: nothing bounds a held stop but this
   * timeout). Nothing once stopped.
   * @returns `'cancel-decides'` when it changed nothing for a cancel waiting for the host's verdict
   */
  timeOut(reason: unknown): 'cancel-decides' | undefined {
    if (this.aborted) return;
    if (this.codeEnded && !this.isEnded && this.heldCancelGraceMs !== undefined) {
      this.hold(reason);
      return;
    }
    if (this.codeEnded || this.isEnded || this.askCancel === undefined || this.heldCancelGraceMs === undefined) {
      this.abort(reason);
      return;
    }
    if (this.heldCancel !== undefined) return 'cancel-decides'; // a cancel waits for the host's verdict
    this.hold(reason);
    this.askCancel(reason);
  }

  /**
   * Keeps `reason` as {@link ExecutionStop.heldCancel} unless a stop is held already (the first
   * one stands), and arms the held stop's grace ({@link ExecutionStop.heldCancelGraceMs}, set by
   * the caller) unless it runs: at its end the execution is stopped with `reason`.
   */
  private hold(reason: unknown): void {
    this.heldCancel ??= reason;
    this.heldCancelTimer ??= setTimeout(() => this.abort(reason), this.heldCancelGraceMs);
  }

  /**
   * The module's host said it stopped the module at the held cancel's request, before its code
   * returned or threw (`stopped`): that cancel stops the execution now. Nothing without a held
   * cancel put to the host (a `stopped` no one asked for), once the code ended, or once ended.
   */
  hostStopped(): void {
    if (this.heldCancel !== undefined && !this.codeEnded && !this.isEnded) this.abort(this.heldCancel);
  }

  /** The execution ended (its answer is known): a held cancel's grace is over, it stops nothing. */
  ended(): void {
    this.isEnded = true;
    clearTimeout(this.heldCancelTimer);
    this.heldCancelTimer = undefined;
  }

  /**
   * Stops, the first time only: the {@link ExecutionStop.onAbort} listeners are called first, in
   * order, then the signal's (the execution's own before the module's, as when it listened on the
   * signal before the module ran). A signal not read yet is made aborted, with the same reason.
   */
  override abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    clearTimeout(this.heldCancelTimer); // a held cancel's grace, if one runs: stopped now
    this.heldCancelTimer = undefined;
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) for (const listener of listeners) listener();
    if (this.signalAbortsWithin) this.signalAbortsWithin(() => super.abort(reason));
    else super.abort(reason);
  }

  /** Calls `listener` once when it stops; at once if it has. */
  onAbort(listener: () => void): void {
    if (this.aborted) listener();
    else (this.listeners ??= []).push(listener);
  }
}
