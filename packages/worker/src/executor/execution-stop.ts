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
   * execution, its outcome stands (Temporal's rule: a completion wins over a later cancel); its
   * timeout ({@link ExecutionStop.abort}) still does. @default false
   */
  codeEnded = false;
  /**
   * The first cancel's reason that came once {@link ExecutionStop.codeEnded} was set: not acted on
   * at once; the answer when the execution ends without its host's `done`, or once
   * {@link ExecutionStop.lateCancelGraceMs} passed.
   */
  lateCancel: unknown;
  /**
   * How long (ms) a late cancel ({@link ExecutionStop.lateCancel}) waits for the execution's end
   * ({@link ExecutionStop.ended}) before it stops it all the same, as a cancel before
   * `codeEnded` does (with its reason): in a module host, the worker's kill grace (`--kill-grace`,
   * 10 s by default; `hosted-execution.ts`). So a host stuck in a module's end, or a module that
   * forged its host's `returned` (any code can write on the host channel), holds a cancel that long
   * at most, not the rest of its timeout. As a Temporal activity's completion wins over a cancel
   * only if it comes before the cancel's deadline (its heartbeat timeout). Undefined: a late cancel
   * waits for the end or the timeout. @default undefined
   */
  lateCancelGraceMs: number | undefined;
  private lateCancelTimer: ReturnType<typeof setTimeout> | undefined;
  private listeners: (() => void)[] | undefined;

  /**
   * A cancel: stops with `reason` (an `ExecutionCancelledError`) as {@link ExecutionStop.abort}
   * does, unless the module's code has ended ({@link ExecutionStop.codeEnded}): then it is kept
   * as {@link ExecutionStop.lateCancel} (the first only), and stops it once
   * {@link ExecutionStop.lateCancelGraceMs} passed unless it ended before. Nothing once stopped.
   */
  cancel(reason: unknown): void {
    if (this.aborted) return;
    if (!this.codeEnded) {
      this.abort(reason);
      return;
    }
    if (this.lateCancel !== undefined) return;
    this.lateCancel = reason;
    if (this.lateCancelGraceMs !== undefined)
      this.lateCancelTimer = setTimeout(() => this.abort(reason), this.lateCancelGraceMs);
  }

  /** The execution ended (its answer is known): a late cancel's grace is over, it stops nothing. */
  ended(): void {
    clearTimeout(this.lateCancelTimer);
    this.lateCancelTimer = undefined;
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
    this.ended(); // a late cancel's grace, if one runs: stopped now
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
