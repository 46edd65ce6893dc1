/**
 * How an execution is stopped (a cancel, its timeout, the worker going): whether it was, why, and
 * who is told. Its `AbortSignal` is made only when something reads it (the module's `ctx.signal`,
 * a wait for a module host): an execution in a module host usually never does, and an
 * `AbortSignal` with one listener costs the worker 2.8 µs of CPU per module warm, more while its
 * code is not optimised yet (issue 14; `new AbortController()` alone costs 0.01 µs: node makes the
 * signal when it is first read). Aborted before that, the signal is made aborted, with the same
 * reason.
 */
export class ExecutionStop {
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
  private controller: AbortController | undefined;
  private listeners: (() => void)[] | undefined;

  /** An `AbortSignal` that aborts with this stop (with its reason), made at the first read. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  /**
   * Stops, the first time only: the {@link ExecutionStop.onAbort} listeners are called first, in
   * order, then the signal's (the execution's own before the module's, as when it listened on the
   * signal before the module ran).
   */
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) for (const listener of listeners) listener();
    const controller = this.controller;
    if (!controller) return;
    if (this.signalAbortsWithin) this.signalAbortsWithin(() => controller.abort(reason));
    else controller.abort(reason);
  }

  /** Calls `listener` once when it stops; at once if it has. */
  onAbort(listener: () => void): void {
    if (this.aborted) listener();
    else (this.listeners ??= []).push(listener);
  }
}
