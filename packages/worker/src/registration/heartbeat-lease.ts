/** Longest delay one Node timer can wait (2^31 − 1 ms, about 24.8 days); longer ones fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Where a {@link HeartbeatLease} stands. */
export type LeaseState =
  /** No heartbeat (or registration) acknowledged yet: nothing was given to this worker to lose. */
  | 'none'
  /** Acknowledged within the heartbeat timeout: the orchestrator still counts on this worker. */
  | 'held'
  /** Nothing acknowledged for the heartbeat timeout: the orchestrator has given this worker's modules away. */
  | 'expired';

export interface HeartbeatLeaseOptions {
  /** Called once each time the lease expires, with the timeout it was held for (ms). */
  onExpired: (timeoutMs: number) => void;
  /** Called when an acknowledgement renews an expired lease. */
  onRenewed: () => void;
  /**
   * A monotonic clock in ms (wall-clock jumps must not expire or extend the lease).
   * @default performance.now
   */
  now?: () => number;
}

/**
 * The worker's side of the heartbeat lease (the rule of Kubernetes leases and of Temporal's
 * heartbeat timeout). The orchestrator counts a worker `Offline`, and dispatches its modules
 * again elsewhere, once it has *received* no heartbeat for the heartbeat timeout. The worker
 * holds its lease for that timeout from the moment it *sent* the last heartbeat (or
 * registration) that was acknowledged: that heartbeat was received after it was sent, so the
 * lease ends here no later than the orchestrator's patience ends there. When it ends the worker
 * fences itself (cancels what it runs, takes nothing new) until an acknowledgement renews it.
 */
export class HeartbeatLease {
  private current: LeaseState = 'none';
  /** When the lease ends, on {@link HeartbeatLeaseOptions.now}'s clock. */
  private deadline = Number.NEGATIVE_INFINITY;
  private timeoutMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly options: HeartbeatLeaseOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  get state(): LeaseState {
    return this.current;
  }

  /**
   * An acknowledgement of a heartbeat or registration sent at `sentAtMs` (this clock), with the
   * orchestrator's heartbeat timeout: the lease runs until `sentAtMs + timeoutMs`. An
   * acknowledgement that arrives after that (a call stuck in transit) renews nothing.
   */
  renew(sentAtMs: number, timeoutMs: number): void {
    const deadline = sentAtMs + timeoutMs;
    if (deadline <= this.deadline) return;
    this.deadline = deadline;
    this.timeoutMs = timeoutMs;
    if (deadline <= this.now()) return;
    const wasExpired = this.current === 'expired';
    this.current = 'held';
    this.arm();
    if (wasExpired) this.options.onRenewed();
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
    const delay = Math.min(Math.max(0, this.deadline - this.now()), MAX_TIMER_MS);
    this.timer = setTimeout(() => this.check(), Math.ceil(delay));
    this.timer.unref();
  }

  private check(): void {
    this.timer = undefined;
    if (this.current !== 'held') return;
    if (this.now() < this.deadline) {
      this.arm();
      return;
    }
    this.current = 'expired';
    this.options.onExpired(this.timeoutMs);
  }
}
