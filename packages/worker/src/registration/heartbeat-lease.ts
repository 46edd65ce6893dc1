/** Longest delay one Node timer can wait (2^31 − 1 ms, about 24.8 days); longer ones fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Where a {@link HeartbeatLease} stands. */
export type LeaseState =
  /** No heartbeat (or registration) acknowledged yet: nothing was given to this worker to lose. */
  | 'none'
  /** Acknowledged recently enough: the orchestrator still counts on this worker. */
  | 'held'
  /**
   * Its renew deadline passed without an acknowledgement: the lease ends within the fence lead
   * (or has ended), and then the orchestrator gives this worker's modules away. The worker fences.
   */
  | 'expired';

export interface HeartbeatLeaseOptions {
  /**
   * Called once each time the renew deadline passes, with how long nothing had been acknowledged
   * then and the heartbeat timeout the lease was held for (ms): the worker fences itself.
   */
  onExpired: (silentMs: number, timeoutMs: number) => void;
  /** Called when an acknowledgement renews an expired lease. */
  onRenewed: () => void;
  /** Called each time an acknowledgement moves the lease's end, with the new end (on {@link HeartbeatLeaseOptions.now}'s clock). */
  onExtended?: (endsAt: number) => void;
  /**
   * How long before the lease's end the worker fences (its fence lead), given the heartbeat
   * timeout (ms): the time its modules' processes get, between SIGTERM and the lease's end, to
   * stop on their own. See {@link fenceLeadMs}.
   * @default () => 0: fences when the lease ends
   */
  fenceLeadMs?: (timeoutMs: number) => number;
  /**
   * A monotonic clock in ms (wall-clock jumps must not expire or extend the lease).
   * @default performance.now
   */
  now?: () => number;
}

/**
 * How long before its lease ends a worker fences: its kill grace (`killGraceMs`), so that the
 * processes of the modules it cancels get their SIGTERM and the whole grace before the lease
 * ends (and SIGKILL then), but at most a quarter of the heartbeat timeout, so that a worker still
 * tolerates three quarters of the timeout without an acknowledgement (a kill grace of 10 s with a
 * timeout of 3 s would fence it at once). The same rule as Kubernetes' leader election, whose
 * leader gives up at its renew deadline, before the lease duration the others wait for.
 */
export function fenceLeadMs(killGraceMs: number, timeoutMs: number): number {
  return Math.max(0, Math.min(killGraceMs, timeoutMs / 4));
}

/**
 * The worker's side of the heartbeat lease (the rule of Kubernetes leases and of Temporal's
 * heartbeat timeout). The orchestrator counts a worker `Offline`, and dispatches its modules
 * again elsewhere, once it has *received* no heartbeat for the heartbeat timeout. The worker
 * holds its lease for that timeout from the moment it *sent* the last heartbeat (or
 * registration) that was acknowledged: that heartbeat was received after it was sent, so the
 * lease ends here no later than the orchestrator's patience ends there. The worker fences itself
 * (cancels what it runs, takes nothing new) at its renew deadline, the fence lead before the
 * lease ends, so that what it cancels is gone when the lease ends; an acknowledgement renews it.
 */
export class HeartbeatLease {
  private current: LeaseState = 'none';
  /** When the lease ends, on {@link HeartbeatLeaseOptions.now}'s clock. */
  private end = Number.NEGATIVE_INFINITY;
  private timeoutMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private readonly leadMs: (timeoutMs: number) => number;

  constructor(private readonly options: HeartbeatLeaseOptions) {
    this.now = options.now ?? (() => performance.now());
    this.leadMs = options.fenceLeadMs ?? (() => 0);
  }

  get state(): LeaseState {
    return this.current;
  }

  /** When the lease ends (on the lease's clock); `-Infinity` before the first acknowledgement. */
  get endsAt(): number {
    return this.end;
  }

  /**
   * The renew deadline (on the lease's clock): the fence lead before the lease's end; the worker
   * fences when it passes without an acknowledgement. `-Infinity` before the first one.
   */
  get renewBy(): number {
    return this.end - this.leadMs(this.timeoutMs);
  }

  /**
   * An acknowledgement of a heartbeat or registration sent at `sentAtMs` (this clock), with the
   * orchestrator's heartbeat timeout: the lease runs until `sentAtMs + timeoutMs`. An
   * acknowledgement that arrives after its renew deadline (a call stuck in transit) renews nothing.
   */
  renew(sentAtMs: number, timeoutMs: number): void {
    const end = sentAtMs + timeoutMs;
    if (end <= this.end || end - this.leadMs(timeoutMs) <= this.now()) return;
    this.end = end;
    this.timeoutMs = timeoutMs;
    const wasExpired = this.current === 'expired';
    this.current = 'held';
    this.arm();
    this.options.onExtended?.(end);
    if (wasExpired) this.options.onRenewed();
  }

  /**
   * The orchestrator no longer knows this registration (a heartbeat answered 404, or 401/403:
   * it was unregistered, removed, or the orchestrator restarted): the lease is void now, as
   * though it had expired, without {@link HeartbeatLeaseOptions.onExpired} (the caller fences
   * with its own reason). The next acknowledgement (the registration again) renews it, with
   * `onRenewed`. Returns whether the lease was held.
   */
  revoke(): boolean {
    if (this.current !== 'held') return false;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.current = 'expired';
    return true;
  }

  /** Stops watching (the link stopped): no more callbacks. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.current = 'none';
  }

  private arm(): void {
    clearTimeout(this.timer);
    // Checked again when it fires: a renewal meanwhile moved the deadline, and a deadline past
    // the longest timer takes several.
    const delay = Math.min(Math.max(0, this.renewBy - this.now()), MAX_TIMER_MS);
    this.timer = setTimeout(() => this.check(), Math.ceil(delay));
    this.timer.unref();
  }

  private check(): void {
    this.timer = undefined;
    if (this.current !== 'held') return;
    if (this.now() < this.renewBy) {
      this.arm();
      return;
    }
    this.current = 'expired';
    this.options.onExpired(this.timeoutMs - this.leadMs(this.timeoutMs), this.timeoutMs);
  }
}
