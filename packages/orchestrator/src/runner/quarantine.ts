import { formatTimeSpan } from '@mpd/contract';
import { backoffDelay } from '@mpd/server-kit';

/**
 * The probation of a worker quarantined because its endpoint refused a connection: the first
 * time 5 s, doubling with each later refusal in the run up to a minute (with jitter), like the
 * re-dispatch backoff of lost attempts. A worker whose process restarts registers again well
 * within that; one that only lost its port for a moment is tried again soon.
 */
export const REFUSAL_PROBATION = { initialMs: 5_000, maxMs: 60_000 } as const;

/** Why a worker gets no modules in this run. */
export interface QuarantineEntry {
  /**
   * `refused`: its endpoint refused the connection (nothing listens there: the process is gone,
   * or its port is), or a gateway in front of it refused a call (429/503 without the worker's
   * body: a rate limit, no healthy upstream); `broken`: its endpoint answered as something that is not this worker
   * (404 `RouteNotFound`, 401 to its credential, not the contract's JSON, a TLS failure).
   */
  readonly kind: 'refused' | 'broken';
  /** What the endpoint did, as the attempt that found it reports it. */
  readonly reason: string;
  /** When it began (epoch ms). */
  readonly since: number;
  /**
   * `refused` only: from then on (epoch ms), the worker's next heartbeat ends the quarantine: the
   * process still reports to the orchestrator, so its port may serve again.
   */
  readonly probationUntil: number | undefined;
}

/**
 * The workers a run no longer dispatches to, and why: a worker whose endpoint refused a
 * connection or proved not to be this worker. A quarantine ends when the worker registers again
 * (a restarted process, or new details such as a corrected `--endpoint`), or, for a refusal,
 * with the first heartbeat after its probation ({@link REFUSAL_PROBATION}). A broken endpoint
 * stays quarantined until the worker registers again: its heartbeats say nothing about the
 * endpoint it gave.
 */
export class Quarantine {
  readonly #entries = new Map<string, QuarantineEntry>();
  /** How many times each worker was quarantined for a refusal in this run (its probation grows). */
  readonly #refusals = new Map<string, number>();

  /** @param random jitter source of the probation (inject for tests) */
  constructor(private readonly random: () => number = Math.random) {}

  /**
   * Whether `workerId`'s latest refusal already got the longest probation
   * ({@link REFUSAL_PROBATION}`.maxMs`, before jitter): its probations can grow no more, so a
   * further refusal is no longer a cool-down worth waiting out (the run counts it as a loss).
   */
  probationAtLongest(workerId: string): boolean {
    const times = this.#refusals.get(workerId) ?? 0;
    return times > 0 && REFUSAL_PROBATION.initialMs * 2 ** Math.min(times - 1, 30) >= REFUSAL_PROBATION.maxMs;
  }

  /**
   * Quarantines `workerId` from `now` (epoch ms); false when it already was (the first reason stays).
   * @param retryAfterMs a refusal's `Retry-After` (ms, a gateway's bare 429/503): the probation
   *   lasts at least that long, but at most {@link REFUSAL_PROBATION}`.maxMs` (a gateway's hint of
   *   an hour does not keep a heartbeating worker out of the run longer than a refused connection
   *   would; as the worker takes a gateway's 503 `Retry-After` at most its longest backoff)
   */
  add(workerId: string, kind: QuarantineEntry['kind'], reason: string, now: number, retryAfterMs?: number): boolean {
    if (this.#entries.has(workerId)) return false;
    let probationUntil: number | undefined;
    if (kind === 'refused') {
      const times = this.#refusals.get(workerId) ?? 0;
      this.#refusals.set(workerId, times + 1);
      const backoff = backoffDelay(times, REFUSAL_PROBATION.initialMs, REFUSAL_PROBATION.maxMs, this.random);
      probationUntil = now + Math.max(backoff, Math.min(retryAfterMs ?? 0, REFUSAL_PROBATION.maxMs));
    }
    this.#entries.set(workerId, { kind, reason, since: now, probationUntil });
    return true;
  }

  /** Why `workerId` is quarantined, or undefined when it is not. */
  get(workerId: string): QuarantineEntry | undefined {
    return this.#entries.get(workerId);
  }

  has(workerId: string): boolean {
    return this.#entries.has(workerId);
  }

  /** Whether no worker is quarantined (the common case: the scheduler then skips the check). */
  get empty(): boolean {
    return this.#entries.size === 0;
  }

  /** `workerId` registered again: its quarantine ends. True when it was quarantined. */
  registered(workerId: string): boolean {
    return this.#entries.delete(workerId);
  }

  /**
   * A new start of `workerId` (another incarnation registered under the id): its quarantine ends
   * and its refusals are forgotten, so its next probation is the first one again and a refusal
   * is not counted as past the longest ({@link Quarantine.probationAtLongest}) for what an
   * earlier process's endpoint did. (Each start's refusals still count as a loss of their own:
   * `PipelineRun.lost`.) True when it was quarantined.
   */
  newStart(workerId: string): boolean {
    this.#refusals.delete(workerId);
    return this.#entries.delete(workerId);
  }

  /** `workerId` sent a heartbeat at `now`: a refusal's quarantine ends once its probation is over. True when it ended. */
  heartbeat(workerId: string, now: number): boolean {
    const entry = this.#entries.get(workerId);
    if (entry?.probationUntil === undefined || now < entry.probationUntil) return false;
    return this.#entries.delete(workerId);
  }

  /** `quarantined for this run: …`, naming what lifts it, or undefined when `workerId` is not quarantined. */
  describe(workerId: string, now: number): string | undefined {
    const entry = this.#entries.get(workerId);
    if (!entry) return undefined;
    const lifted =
      entry.probationUntil === undefined
        ? 'until it registers again'
        : `until it registers again, or heartbeats after ${formatTimeSpan(Math.max(0, entry.probationUntil - now))}`;
    return `quarantined for this run (${entry.reason}) ${lifted}`;
  }
}
