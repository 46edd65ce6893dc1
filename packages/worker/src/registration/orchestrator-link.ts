import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { bearerHeader, type OrchestratorClient, MpdClientError } from '@mpd/client';
import { type ErrorBody, IDEMPOTENCY_KEY_HEADER, retryAfterMs, type WorkerNodeRegistration } from '@mpd/contract';
import { longSleep } from '@mpd/contract/timers';
import { UnknownStatusError } from '@ts-rest/core';
import { backoffDelay, writeStateFile } from '@mpd/server-kit';
import type { Logger } from 'pino';
import { fenceLeadMs, HeartbeatLease } from './heartbeat-lease.js';

/**
 * The lock the processes under one worker id take on their shared credential file for its
 * check-then-write (`proper-lockfile`: a directory `FILE.lock` made with `mkdir`, atomic, its
 * mtime refreshed while held): the check that the file holds what this process last read or
 * wrote there and the write are one step for every process that takes it. A lock left by a
 * crash is stale after 10 s (the library's default) and then taken over. The library retries on
 * every error (its `retries` go to `retry` unfiltered), so it gets none: the link waits itself,
 * and only while another holds the lock (`ELOCKED`), for {@link CREDENTIAL_LOCK_WAIT} (somewhat
 * longer than the stale time, so a crashed holder's lock is taken over); a lock that cannot be
 * made (a read-only or full file system, no permission) is given up at once (a warning; the
 * worker works on). What remains: a process stalled inside the lock (the few milliseconds of
 * its check and write) for more than those 10 s loses it to another and, thawed, may still
 * write once (`onCompromised` only tells it afterwards).
 */
const CREDENTIAL_FILE_LOCK = { realpath: false, stale: 10_000, retries: 0 } as const;

/**
 * How the link waits for the credential file's lock while another process holds it: retries
 * with the project's backoff (`backoffDelay`: from `minMs`, doubling with jitter up to `maxMs`),
 * for at most `totalMs` in all (the library's stale time and a margin; the retries
 * `proper-lockfile` made before, about 12 s).
 */
const CREDENTIAL_LOCK_WAIT = { minMs: 25, maxMs: 2_000, totalMs: 12_000 } as const;

/**
 * How long {@link OrchestratorLink.stop} waits for a credential write under way (ms): the write
 * itself takes milliseconds; a wait for another process's lock ends at the stop.
 */
const CREDENTIAL_WRITE_STOP_WAIT_MS = 1_000;

/**
 * The heartbeat timeout a worker fences by when the orchestrator does not say (an older one
 * without `heartbeatTimeoutSeconds`), in ms: the orchestrator's default `--heartbeat-timeout`.
 */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 120_000;

/**
 * How long one heartbeat call may wait for its answer: the heartbeat timeout, as an answer that
 * comes later cannot renew the lease anyway (and one that comes sooner must not be given up, or
 * a slow orchestrator's answers would fence a worker it counts as live); but at most 30 s, the
 * client's usual timeout, so that a call stuck on a dead connection (a partition) does not hold
 * the next heartbeat back for minutes once the network is back; and at least one interval.
 */
function heartbeatCallDeadlineMs(intervalMs: number, timeoutMs: number): number {
  return Math.max(intervalMs, Math.min(timeoutMs, 30_000));
}

/**
 * A registration attempt of this process that may have been served though its answer was lost
 * (see {@link OrchestratorLink}): for how long after it the id's live holder may be that
 * registration, which the link then waits out rather than taking it for another process's.
 * The registration, never heartbeated, is `Offline` one heartbeat timeout after it was served,
 * the timeout of the orchestrator that served it. That may be a restarted one that uses a
 * longer timeout than the one this process learned at its last registration: so the link waits
 * at least {@link DEFAULT_HEARTBEAT_TIMEOUT_MS}, the orchestrator's default `--heartbeat-timeout`
 * (the spec names none). An orchestrator restarted with a still longer one can still make it
 * stop as replaced after that floor, its own registration still live.
 */
export class UnansweredRegistration {
  /** When (`now`) the last such attempt failed; undefined: none. */
  private at: number | undefined;

  /** @param now a monotonic clock in ms (the link's) */
  constructor(private readonly now: () => number) {}

  /** An attempt that may have been served went unanswered, now. */
  noteLost(): void {
    this.at = this.now();
  }

  /** Whether an attempt went unanswered since this was made (one per registration round). */
  get noted(): boolean {
    return this.at !== undefined;
  }

  /**
   * Whether the id's live holder may still be that unread registration: within
   * `max(knownTimeoutMs, DEFAULT_HEARTBEAT_TIMEOUT_MS)` after the last unanswered attempt.
   * @param knownTimeoutMs the heartbeat timeout from the last registration answer (ms)
   */
  mayHoldTheId(knownTimeoutMs: number): boolean {
    return this.at !== undefined && this.now() - this.at <= Math.max(knownTimeoutMs, DEFAULT_HEARTBEAT_TIMEOUT_MS);
  }
}

/** Where the link to the orchestrator stands (Temporal-style explicit lifecycle). */
export type LinkState =
  | { status: 'idle' }
  | { status: 'registering'; attempt: number; lastError?: string }
  | {
      status: 'registered';
      heartbeatIntervalMs: number;
      /** The orchestrator's heartbeat timeout: the worker fences itself when nothing was acknowledged for this long. */
      heartbeatTimeoutMs: number;
      consecutiveFailures: number;
      lastError?: string;
    }
  | { status: 'stopping' }
  | { status: 'stopped' }
  /** For good: the orchestrator refused the registration as invalid (400); `message` says why. */
  | { status: 'refused'; message: string }
  /**
   * For good: another process registered under this id (409 `WorkerReplaced` to a heartbeat, or
   * 409 `WorkerIdTaken` to a registration again of a process that had registered: see
   * {@link OrchestratorLink}).
   */
  | { status: 'replaced'; message: string };

/** Why a link ended for good (see {@link LinkStart.onEnded}). */
export type LinkEnd = Extract<LinkState, { status: 'refused' | 'replaced' }>;

export interface OrchestratorLinkOptions {
  client: OrchestratorClient;
  /** The worker's id (the one its registrations carry). */
  workerId: string;
  /** The load reported in each heartbeat. */
  currentLoad: () => number;
  /**
   * The executions running now, reported in each heartbeat (`executions`): the orchestrator
   * asks again for the outcome of one it still waits for that is no longer listed.
   * @default none reported
   */
  executions?: () => readonly string[];
  /**
   * The executions that finished since the last acknowledged heartbeat (`ids`), reported in
   * each heartbeat (`finished`), and told (`reported`) which ones a heartbeat the orchestrator
   * acknowledged carried: an attempt that ran and finished between two heartbeats is never in
   * `executions`, and the orchestrator would take it for a call that never arrived.
   * @default none reported
   */
  finished?: { ids: () => readonly string[]; reported: (ids: readonly string[]) => void };
  logger: Logger;
  /** The cluster join token to register with (bearer token). */
  joinToken?: string | undefined;
  /**
   * Where the worker keeps its credential between runs (written after each registration that
   * changed it, readable by its owner only; read at start): see `WorkerOptions.credentialFile`.
   * Written only while it holds what this process last read or wrote there (or nothing), the
   * check and the write under a lock (a directory `FILE.lock` beside it): see
   * {@link OrchestratorLink}.
   */
  credentialFile?: string | undefined;
  /** First retry delay while the orchestrator cannot be reached (ms); doubles up to `maxBackoffMs` (see `WorkerOptions`). */
  initialBackoffMs: number;
  /** Longest retry delay (ms). */
  maxBackoffMs: number;
  /**
   * This process's incarnation: minted once per process start, sent with every registration and
   * heartbeat, so that the orchestrator tells this process from a later one under the same id.
   */
  incarnation: string;
  /**
   * The worker's kill grace (ms): it fences this long before its lease ends, at most a quarter of
   * the heartbeat timeout (see `fenceLeadMs`), so that the processes of the modules it cancels are
   * gone when the lease ends.
   * @default 0: fences when the lease ends
   */
  killGraceMs?: number;
  /**
   * The monotonic clock the heartbeat lease is measured by, in ms (tests inject one).
   * @default performance.now
   */
  now?: () => number;
}

/** What {@link OrchestratorLink.start} takes: what exists only once the worker serves. */
export interface LinkStart {
  /** The node to register (its endpoint names the port the server got); called before every registration so it is current. */
  node: () => WorkerNodeRegistration;
  /** Called when a heartbeat answer says `shouldDrain: true`. */
  onDrainRequested?: () => void;
  /** Called for each execution a heartbeat answer lists in `cancel`: cancel it as a cancel call would. */
  onCancelRequested?: (executionId: string, reason: string) => void;
  /**
   * Called at the lease's renew deadline, when no heartbeat has been acknowledged for the
   * orchestrator's heartbeat timeout less the fence lead (see `OrchestratorLinkOptions.killGraceMs`):
   * once the lease ends the orchestrator gives this worker's modules to others, so cancel them
   * (with `reason`) and take no new ones. The link goes on trying to reach the orchestrator.
   * Also called at once when a heartbeat answers 404, 401 or 403 (the orchestrator no longer
   * counts this registration), before the registration again.
   */
  onFenced?: (reason: string) => void;
  /** Called when a heartbeat (or registration) is acknowledged again after {@link LinkStart.onFenced}: take modules again. */
  onUnfenced?: () => void;
  /**
   * Called each time an acknowledgement renews the heartbeat lease, with when it now ends (in ms
   * from now): pass it on to what must stop with it (the module hosts).
   */
  onLeaseRenewed?: (endsInMs: number) => void;
  /**
   * Called once when the link ends for good: the orchestrator refused the registration as
   * invalid (400: the same registration would be refused again), or another process took this
   * id (409 `WorkerReplaced`, or `WorkerIdTaken` once registered: this one must cancel
   * everything and stop). The link neither
   * unregisters nor drains afterwards: the id is no longer this process's.
   */
  onEnded?: (end: LinkEnd) => void;
}

/**
 * Keeps a worker registered with the orchestrator: registers (retrying with backoff while the
 * orchestrator is down), sends heartbeats at the interval the orchestrator returned, registers
 * again when a heartbeat answers 404 or 401 (the orchestrator restarted, declared it lost, or it
 * was unregistered: it fences first, see `forgotten`), and
 * unregisters on {@link OrchestratorLink.stop}. It holds the heartbeat lease
 * ({@link HeartbeatLease}): with nothing acknowledged by its renew deadline it fences the
 * worker ({@link LinkStart.onFenced}), and each renewal is passed on ({@link LinkStart.onLeaseRenewed}). It ends for good on a registration refused as invalid
 * (400) and when another process has taken its id ({@link LinkStart.onEnded}).
 *
 * Replaced, whichever order things happened in. The orchestrator may dispatch as soon as it
 * accepts a registration, so a process can stall (SIGSTOP, a GC pause, a VM stall) after the
 * orchestrator accepted it and before it read the answer; a replacement with the same id and
 * credential file registers once it is Offline and gets a new credential (the file did not hold
 * the old process's yet). Thawed, the old process's heartbeat presents a credential the
 * orchestrator no longer knows (401, not the 409 `WorkerReplaced` a process stalled after reading
 * its answer gets), and its registration again is refused 409 `WorkerIdTaken` as long as the
 * replacement is live. The rule: a process that has registered (the orchestrator accepted its
 * incarnation) and whose registration again is refused `WorkerIdTaken` twice in a row has been
 * replaced by another live process, and ends as for `WorkerReplaced` (the worker exits 3, with
 * the same message). The first refusal is checked by one more attempt after the backoff: it may
 * answer a gateway's retry of this process's own attempt, served just before (a stale
 * duplicate), and the attempt after it is then this process's retry, which the orchestrator
 * takes (see below). One exception: when an attempt of that registration may have been served without
 * its answer reaching this process (any failure but those that prove it never reached the
 * orchestrator, see `provesNotServed`; and a 5xx answer), the live holder may be this process's
 * own unread registration, which a new orchestrator gave a new credential; the link then retries
 * (as a fresh process does) until that registration, never heartbeated, is Offline: for the
 * orchestrator's heartbeat timeout after the attempt, at least the default one (see
 * {@link UnansweredRegistration}). A fresh process that has not registered yet retries
 * `WorkerIdTaken` as before: the old holder may be its own crashed predecessor, whose id frees
 * once it is Offline.
 *
 * A retry after a lost answer. Every registration attempt carries this process's registration
 * key (the `Idempotency-Key` header: a random secret of the link's, never logged nor written)
 * and a `sequence` one greater than the last attempt's. An orchestrator of round K or later
 * takes the attempt after a lost answer as this process's retry (the same key, incarnation and
 * registration, a greater sequence, the unread credential never used): 200 at once, the unread
 * credential revoked; so the wait above only happens with older orchestrators, or when the
 * unread registration was not this process's (a registration made in-process, without a key).
 * Each registration retried after a 409 or a 429 (`RateLimited`) waits the answer's
 * `Retry-After` (the holder's lease; the rate limit's window), or the backoff where that is
 * longer ({@link retryAfterMs}); after a 503 (`TooManyWorkers`, `TooManyPipelines`) its
 * `Retry-After` (the registry's next expected removal) at most `maxBackoffMs`, as an unregister
 * or a drain frees room sooner; a heartbeat after a 429 likewise, but at most until one more heartbeat
 * can still be acknowledged before the renew deadline ({@link heartbeatRetryMs}), and after a
 * gateway's 503 (a status the contract does not list) its `Retry-After` at most `maxBackoffMs`, within that bound.
 *
 * The credential file is shared by the processes started with the same id, so the link writes
 * it only while it holds what this process last read or wrote there, or nothing: a stalled
 * process that reads its answer late finds the replacement's credential there and leaves it
 * (so the replacement, restarted, keeps its id at once). The check and the write are one step
 * under a lock on the file (see {@link CREDENTIAL_FILE_LOCK}, which says what remains).
 */
export class OrchestratorLink {
  private current: LinkState = { status: 'idle' };
  private readonly stopController = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly registeredWaiters = new Set<() => void>();
  /** The credential from the last registration: sent on heartbeats, unregister, drain. */
  private credentialValue: string | undefined;
  /**
   * This process's registration key: 32 random bytes (base64url), made once per link (one link
   * per worker start, as the incarnation), sent as the `Idempotency-Key` of every registration
   * and nowhere else: never logged, never written to the credential file or anywhere, never in
   * the link's state. With {@link OrchestratorLink.sequence} it makes a registration after a
   * lost answer a retry the orchestrator answers at once (README "A registration whose answer
   * was lost"); anyone else who knows the id and the incarnation still cannot.
   */
  readonly #registrationKey = `"${randomBytes(32).toString('base64url')}"`;
  /** The last registration attempt's sequence number (the body's `sequence`): one more at each attempt, from 1. */
  private sequence = 0;
  /** What the credential file held when this process last read or wrote it (undefined: nothing). */
  private credentialInFile: string | undefined;
  /** The credential still to be written to the file (the latest registration's), if any. */
  private credentialToWrite: string | undefined;
  /** The background writes of the credential file, one at a time (see {@link OrchestratorLink.keepCredential}). */
  private credentialWriter: Promise<void> | undefined;
  /** Whether a registration has completed since the link started (the worker's credential state is known). */
  private registeredOnce = false;
  /** The attempts of the registration round under way (or the last one) that may have been served though unanswered. */
  private unanswered: UnansweredRegistration | undefined;
  /** What the link reports to; set by {@link OrchestratorLink.start}. */
  private hooks: LinkStart | undefined;
  private readonly lease: HeartbeatLease;
  /** The orchestrator's heartbeat timeout from the last registration answer (ms). */
  private heartbeatTimeoutMs = DEFAULT_HEARTBEAT_TIMEOUT_MS;
  private readonly now: () => number;

  constructor(private readonly options: OrchestratorLinkOptions) {
    this.now = options.now ?? (() => performance.now());
    const killGraceMs = options.killGraceMs ?? 0;
    this.lease = new HeartbeatLease({
      now: this.now,
      fenceLeadMs: (timeoutMs) => fenceLeadMs(killGraceMs, timeoutMs),
      onExpired: (silentMs, timeoutMs) => {
        const reason = `fenced: no heartbeat acknowledged for ${seconds(silentMs)} s; the lease ends ${seconds(timeoutMs - silentMs)} s later (the orchestrator's heartbeat timeout is ${seconds(timeoutMs)} s), and the orchestrator gives this worker's modules to others then`;
        this.options.logger.warn(
          { heartbeatTimeoutMs: timeoutMs, silentMs },
          `${reason}; cancelling them, taking no new ones`,
        );
        this.hooks?.onFenced?.(reason);
      },
      onExtended: (endsAt) => this.hooks?.onLeaseRenewed?.(endsAt - this.now()),
      onRenewed: () => {
        this.options.logger.info('a heartbeat was acknowledged again: no longer fenced, taking modules again');
        this.hooks?.onUnfenced?.();
      },
    });
  }

  get state(): LinkState {
    return this.current;
  }

  /**
   * The credential the orchestrator issued at the last registration: the worker sends it on
   * its own calls, and accepts execute and cancel calls only with it.
   */
  get credential(): string | undefined {
    return this.credentialValue;
  }

  /**
   * Whether the worker waits for its first registration: until one completes it does not know the
   * credential the orchestrator will call it with (execute and cancel answer 503 `WorkerNotReady`
   * to calls without another accepted token). False once one completed, and once the link ended
   * or stopped without one.
   */
  get awaitingFirstRegistration(): boolean {
    const { status } = this.current;
    return !this.registeredOnce && (status === 'idle' || status === 'registering');
  }

  /**
   * Whether the worker waits for a registration whose credential the orchestrator may already
   * call it with: its first ({@link awaitingFirstRegistration}), or one again after an attempt
   * that may have been served went unanswered (the orchestrator may dispatch with the credential
   * that answer carried, which this process never read). Execute and cancel calls with a token
   * it does not accept are then held until the registration completes (at most the worker's
   * hold), rather than refused 401 at once.
   */
  get awaitingRegistration(): boolean {
    return this.awaitingFirstRegistration || (this.current.status === 'registering' && this.unanswered?.noted === true);
  }

  /**
   * Whether the worker is fenced: no heartbeat acknowledged by the lease's renew deadline (see
   * {@link LinkStart.onFenced}).
   */
  get fenced(): boolean {
    return this.lease.state === 'expired';
  }

  /** Starts registering, then heartbeats, in the background (once; later calls do nothing). */
  start(start: LinkStart): void {
    if (this.loop) return;
    this.hooks = start;
    this.credentialValue = this.readCredentialFile();
    this.credentialInFile = this.credentialValue;
    this.loop = this.run(start).catch((error: unknown) => {
      if (!this.stopController.signal.aborted)
        this.options.logger.error({ err: error }, 'orchestrator link stopped unexpectedly');
    });
  }

  /** Resolves once the worker is registered (at once if it is). */
  registered(): Promise<void> {
    if (this.current.status === 'registered') return Promise.resolve();
    return new Promise((resolve) => this.registeredWaiters.add(resolve));
  }

  /**
   * Resolves once the worker is registered (at once if it is), or after `maxMs`, whichever comes
   * first; a wait that times out leaves nothing behind (calls held while the worker waits for
   * its first registration use it, however many there are).
   */
  registeredWithin(maxMs: number): Promise<void> {
    if (this.current.status === 'registered') return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.registeredWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, maxMs);
      this.registeredWaiters.add(done);
    });
  }

  /**
   * Tells the orchestrator this worker is draining (so it sends no new modules and lists it as
   * `Draining`); best effort: a worker that cannot reach it answers new modules 503 anyway.
   */
  async announceDrain(): Promise<void> {
    if (this.ended) return; // the id is another process's now
    try {
      const response = await this.options.client.workers.drain({
        params: { workerId: this.options.workerId },
        query: { incarnation: this.options.incarnation },
        fetchOptions: { signal: AbortSignal.timeout(5_000) },
        extraHeaders: bearerHeader(this.credentialValue),
      });
      if (response.status !== 200) {
        this.options.logger.warn(
          { status: response.status, error: errorText(response.body as ErrorBody | undefined) },
          'the orchestrator refused the drain; it may send modules until it counts this worker gone',
        );
      }
    } catch (error) {
      this.options.logger.warn({ err: describe(error) }, 'could not tell the orchestrator about the drain');
    }
  }

  /** Stops heartbeats and unregisters (best effort: a down orchestrator will expire the worker). */
  async stop(): Promise<void> {
    if (this.current.status === 'stopped' || this.current.status === 'stopping') return;
    this.lease.stop();
    if (this.ended) {
      // Ended for good: nothing to unregister (refused), or the id is another process's (replaced).
      this.stopController.abort();
      await this.loop;
      await this.credentialWritten();
      return;
    }
    const wasRegistered = this.current.status === 'registered';
    this.current = { status: 'stopping' };
    this.stopController.abort();
    await this.loop;
    await this.credentialWritten();
    if (wasRegistered) {
      try {
        const response = await this.options.client.workers.unregister({
          params: { workerId: this.options.workerId },
          query: { incarnation: this.options.incarnation },
          fetchOptions: { signal: AbortSignal.timeout(5_000) },
          extraHeaders: bearerHeader(this.credentialValue),
        });
        if (response.status === 200) {
          this.options.logger.info('unregistered from the orchestrator');
        } else {
          this.options.logger.warn(
            { status: response.status, error: errorText(response.body as ErrorBody | undefined) },
            'the orchestrator refused to unregister this worker; it will expire it',
          );
        }
      } catch (error) {
        this.options.logger.warn(
          { err: describe(error) },
          'could not unregister; the orchestrator will expire this worker',
        );
      }
    }
    this.current = { status: 'stopped' };
  }

  /** The credential a previous run of this worker kept, if any (a missing file is the first run). */
  private readCredentialFile(): string | undefined {
    const file = this.options.credentialFile;
    if (file === undefined) return undefined;
    try {
      return credentialIn(file);
    } catch (error) {
      this.options.logger.warn(
        { err: describe(error), file },
        'could not read the credential file; registering without it',
      );
      return undefined;
    }
  }

  /**
   * Keeps `credential` for the next run, in the background: the registration does not wait for
   * the file (the orchestrator may dispatch as soon as it answered, and the heartbeats must go),
   * however long another process holds its lock. One write at a time, of the latest credential;
   * the link's stop ends a wait for the lock (see {@link OrchestratorLink.credentialWritten}).
   */
  private keepCredential(credential: string | undefined): void {
    if (this.options.credentialFile === undefined || credential === undefined) return;
    this.credentialToWrite = credential;
    this.credentialWriter ??= this.writeCredentials();
  }

  /** Writes the credential to write until none is left (the writer of {@link OrchestratorLink.keepCredential}). */
  private async writeCredentials(): Promise<void> {
    try {
      for (let next = this.credentialToWrite; next !== undefined; next = this.credentialToWrite) {
        this.credentialToWrite = undefined;
        await this.writeCredentialFile(next);
      }
    } finally {
      this.credentialWriter = undefined;
    }
  }

  /**
   * Waits for the credential write under way, at most {@link CREDENTIAL_WRITE_STOP_WAIT_MS}
   * (called once the link's stop aborted any wait for the lock, so it is a file write's
   * milliseconds).
   */
  private async credentialWritten(): Promise<void> {
    const writer = this.credentialWriter;
    if (writer === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      writer,
      new Promise((resolve) => (timer = setTimeout(resolve, CREDENTIAL_WRITE_STOP_WAIT_MS))),
    ]);
    clearTimeout(timer);
  }

  /**
   * Keeps the credential for the next run: whole or not at all, readable by this user only; and
   * only while the file holds what this process last read or wrote there, or nothing (see
   * {@link OrchestratorLink}: another process under this id wrote it, which holds the id now).
   * Any failure is one warning: the worker works on, and only a restart after a crash waits for
   * the old registration to expire.
   */
  private async writeCredentialFile(credential: string): Promise<void> {
    const file = this.options.credentialFile!;
    const { logger } = this.options;
    let release: (() => Promise<void>) | undefined;
    try {
      await mkdir(dirname(file), { recursive: true, mode: 0o700 });
      release = await this.lockCredentialFile(file);
      if (release === undefined) {
        logger.warn({ file }, "stopping while another process holds the credential file's lock; not written");
        return;
      }
      const held = credentialIn(file);
      if (held !== undefined && held !== this.credentialInFile) {
        logger.warn(
          { file },
          'another process under this worker id wrote the credential file since this one read it; leaving it as it is',
        );
        return;
      }
      await writeStateFile(file, `${credential}\n`, { private: true });
      this.credentialInFile = credential;
    } catch (error) {
      logger.warn({ err: describe(error), file }, 'could not write the credential file');
    } finally {
      await release?.().catch(() => undefined);
    }
  }

  /**
   * Takes the credential file's lock, waiting (with backoff, {@link CREDENTIAL_LOCK_WAIT}) only
   * while another process holds it; undefined when the link stopped first.
   * @throws any other error of the lock at once (it cannot be made: EROFS, EACCES, ENOSPC, …),
   *   and `ELOCKED` once the wait is over
   */
  private async lockCredentialFile(file: string): Promise<(() => Promise<void>) | undefined> {
    // Loaded only by a worker that keeps a credential file (it hooks the process's exit to
    // remove the locks it holds).
    const { lock } = await import('proper-lockfile');
    const { logger } = this.options;
    const signal = this.stopController.signal;
    const started = this.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return await lock(file, {
          ...CREDENTIAL_FILE_LOCK,
          onCompromised: (error) =>
            logger.warn({ err: describe(error), file }, "the credential file's lock was taken from this process"),
        });
      } catch (error) {
        const waited = this.now() - started;
        if ((error as NodeJS.ErrnoException).code !== 'ELOCKED' || waited >= CREDENTIAL_LOCK_WAIT.totalMs) throw error;
        const delay = backoffDelay(attempt, CREDENTIAL_LOCK_WAIT.minMs, CREDENTIAL_LOCK_WAIT.maxMs);
        if (!(await pause(Math.min(delay, CREDENTIAL_LOCK_WAIT.totalMs - waited), signal))) return undefined;
      }
    }
  }

  /** True once the link ended for good (refused or replaced). */
  private get ended(): boolean {
    return this.current.status === 'refused' || this.current.status === 'replaced';
  }

  private async run({ node }: LinkStart): Promise<void> {
    const signal = this.stopController.signal;
    while (!signal.aborted && !this.ended) {
      const intervalMs = await this.register(node, signal);
      if (intervalMs === undefined) break;
      await this.heartbeatUntilLost(intervalMs, signal);
    }
    if (this.ended) {
      this.lease.stop();
      this.hooks?.onEnded?.(this.current as LinkEnd);
    }
  }

  /** Ends the link for good (see {@link LinkStart.onEnded}). */
  private end(status: LinkEnd['status'], message: string): void {
    this.current = { status, message };
    this.options.logger.error({ status }, message);
  }

  /** Ends the link as replaced: another process registered under this id (`detail`: the orchestrator's words). */
  private endReplaced(detail: string): void {
    this.end(
      'replaced',
      `another process registered as worker '${this.options.workerId}' (${detail}); this one cancels its modules and stops`,
    );
  }

  /** Registers, retrying with backoff; undefined when stopped first. */
  private async register(node: LinkStart['node'], signal: AbortSignal): Promise<number | undefined> {
    const { client, logger } = this.options;
    /** This round's attempts that went unanswered after they may have been served (also read by {@link awaitingRegistration}). */
    const unanswered = new UnansweredRegistration(this.now);
    this.unanswered = unanswered;
    /** The answer's `Retry-After` (ms), when it gave one: the next attempt waits at least that long. */
    let notBefore: number | undefined;
    /**
     * Whether this round has checked a 409 `WorkerIdTaken` once with a further attempt before
     * taking it for a replacement: the 409 may answer a gateway's retry of this very attempt,
     * served after the attempt itself (a stale duplicate), whose answer was lost.
     */
    let checkedTaken = false;
    for (let attempt = 0; !signal.aborted; attempt++) {
      this.current = { status: 'registering', attempt, ...(this.lastError ? { lastError: this.lastError } : {}) };
      try {
        const sentAt = this.now();
        const response = await client.workers.register({
          body: {
            workerNode: { ...node(), currentLoad: this.options.currentLoad() },
            timestamp: new Date().toISOString(),
            ...(this.credentialValue ? { credential: this.credentialValue } : {}),
            incarnation: this.options.incarnation,
            // Every attempt a greater one: a later attempt is a retry, an earlier one stale.
            sequence: ++this.sequence,
          },
          headers: { [IDEMPOTENCY_KEY_HEADER]: this.#registrationKey },
          fetchOptions: { signal },
          extraHeaders: bearerHeader(this.options.joinToken),
        });
        if (response.status === 400) {
          // Invalid as sent (a setting, the pipeline's module names): retrying sends the same.
          this.end('refused', `the orchestrator refused the registration as invalid: ${errorText(response.body)}`);
          return undefined;
        }
        if (response.status === 200) {
          const heartbeatIntervalMs = response.body.heartbeatIntervalSeconds * 1000;
          const { heartbeatTimeoutSeconds } = response.body;
          this.heartbeatTimeoutMs =
            heartbeatTimeoutSeconds === undefined ? DEFAULT_HEARTBEAT_TIMEOUT_MS : heartbeatTimeoutSeconds * 1000;
          const previous = this.credentialValue;
          // Set first: the orchestrator may send a module with it as soon as it answered.
          this.credentialValue = response.body.credential;
          this.lastError = undefined;
          this.registeredOnce = true;
          this.current = {
            status: 'registered',
            heartbeatIntervalMs,
            heartbeatTimeoutMs: this.heartbeatTimeoutMs,
            consecutiveFailures: 0,
          };
          this.lease.renew(sentAt, this.heartbeatTimeoutMs);
          // No workerId here: the link's logger has it already (pino would write it twice).
          // Not the incarnation: a log is read by others than this process (see `incarnation`).
          logger.info(
            { heartbeatIntervalMs, heartbeatTimeoutMs: this.heartbeatTimeoutMs },
            'registered with the orchestrator',
          );
          for (const resolve of this.registeredWaiters) resolve();
          this.registeredWaiters.clear();
          // After all that: the write may wait seconds for another process's lock.
          if (this.credentialValue !== previous) this.keepCredential(this.credentialValue);
          return heartbeatIntervalMs;
        }
        if (
          response.status === 409 &&
          response.body.code === 'WorkerIdTaken' &&
          this.registeredOnce &&
          !unanswered.mayHoldTheId(this.heartbeatTimeoutMs)
        ) {
          if (checkedTaken) {
            // Registered before, and the id is another live process's now (see the class's docs).
            this.endReplaced(response.body.errorMessage);
            return undefined;
          }
          // Once, after the backoff: were the holder this process's own attempt (a gateway
          // retried it, and answered with the duplicate's 409), the next attempt is its retry
          // (its key, a greater sequence) and is taken; another process's holds, and ends this.
          checkedTaken = true;
          this.lastError = `register answered 409: ${JSON.stringify(response.body)}`;
          notBefore = undefined;
          const delay = this.delay(attempt);
          this.current = { status: 'registering', attempt, lastError: this.lastError };
          logger.warn(
            { attempt, retryInMs: delay, error: this.lastError },
            'registration refused: the id is live under another registration; trying once more before stopping as replaced',
          );
          if (!(await pause(delay, signal))) return undefined;
          continue;
        }
        // A 5xx may come after the orchestrator served it: a gateway's 503 (Envoy's, when the
        // orchestrator closed before answering), the orchestrator's own 500 on the way back. (A
        // gateway's 502 or 504 is outside the contract: the client throws it, the catch below.)
        if (response.status >= 500) unanswered.noteLost();
        this.lastError = `register answered ${response.status}: ${JSON.stringify(response.body)}`;
        // 409: the id's live holder is another process, or this one's unread registration:
        // retried once its lease can have ended, not sooner. 429 (`RateLimited`): once the rate
        // window resets. 503 (`TooManyWorkers`, `TooManyPipelines`): the registry's next expected
        // removal is only a hint, as a drain or an unregister frees room at once: at most the
        // longest backoff.
        if (response.status === 409 || response.status === 429)
          notBefore = retryAfterMs(response.headers, MAX_RETRY_AFTER_MS);
        if (response.status === 503) {
          const hint = retryAfterMs(response.headers, MAX_RETRY_AFTER_MS);
          notBefore = hint === undefined ? undefined : Math.min(hint, this.options.maxBackoffMs);
        }
      } catch (error) {
        if (signal.aborted) return undefined;
        // Sent, maybe served, answer lost: the id's live holder may be this very registration.
        if (!provesNotServed(error)) unanswered.noteLost();
        this.lastError = describe(error);
      }
      const delay = Math.max(this.delay(attempt), notBefore ?? 0);
      notBefore = undefined;
      // The state says why while it waits (a Retry-After may be minutes).
      this.current = { status: 'registering', attempt, lastError: this.lastError };
      logger.warn({ attempt, retryInMs: delay, error: this.lastError }, 'registration failed; retrying');
      if (!(await pause(delay, signal))) return undefined;
    }
    return undefined;
  }

  /**
   * Sends heartbeats until the orchestrator no longer knows this worker (404), another process
   * took its id (409), or the link stops.
   */
  private async heartbeatUntilLost(intervalMs: number, signal: AbortSignal): Promise<void> {
    const { client, logger } = this.options;
    const timeoutMs = this.heartbeatTimeoutMs;
    let failures = 0;
    let wait = intervalMs;
    while (await pause(wait, signal)) {
      /**
       * A 429's `Retry-After` (ms), or a gateway's 503's capped at the longest backoff: the next
       * heartbeat waits that long (see {@link heartbeatRetryMs}).
       */
      let notBefore: number | undefined;
      try {
        const sentAt = this.now();
        const finished = this.options.finished?.ids();
        const response = await client.workers.heartbeat({
          body: {
            workerId: this.options.workerId,
            currentLoad: this.options.currentLoad(),
            timestamp: new Date().toISOString(),
            ...(this.options.executions ? { executions: [...this.options.executions()] } : {}),
            ...(finished && finished.length > 0 ? { finished: [...finished] } : {}),
            incarnation: this.options.incarnation,
          },
          fetchOptions: { signal },
          deadlineMs: heartbeatCallDeadlineMs(intervalMs, timeoutMs),
          extraHeaders: bearerHeader(this.credentialValue),
        });
        if (response.status === 409 && response.body.code === 'WorkerReplaced') {
          this.endReplaced(response.body.errorMessage);
          return;
        }
        if (response.status === 404) {
          logger.warn(
            { status: response.status },
            'the orchestrator does not know this worker (it restarted, expired and removed it, or it was unregistered); cancelling its modules and registering again',
          );
          this.forgotten('the orchestrator no longer knows this worker (its heartbeat answered 404)');
          return;
        }
        if (response.status === 401 || response.status === 403) {
          // Also what a process gets whose id another took while it stalled unread (see the class's docs).
          logger.warn(
            { status: response.status },
            "the orchestrator does not take this worker's credential (it restarted, expired it, unregistered this worker, or another process registered under this id: the registration again tells which); cancelling its modules and registering again",
          );
          this.forgotten(
            `the orchestrator no longer takes this worker's credential (its heartbeat answered ${response.status})`,
          );
          return;
        }
        if (response.status === 200) {
          if (failures > 0) logger.info({ failures }, 'heartbeats reach the orchestrator again');
          failures = 0;
          wait = intervalMs;
          this.current = {
            status: 'registered',
            heartbeatIntervalMs: intervalMs,
            heartbeatTimeoutMs: timeoutMs,
            consecutiveFailures: 0,
          };
          this.lease.renew(sentAt, timeoutMs);
          if (finished && finished.length > 0) this.options.finished?.reported(finished);
          for (const { executionId, reason } of response.body.cancel ?? []) {
            this.hooks?.onCancelRequested?.(executionId, reason);
          }
          if (response.body.shouldDrain) this.hooks?.onDrainRequested?.();
          continue;
        }
        this.lastError = `heartbeat answered ${response.status}`;
        // Rate-limited (`RateLimited`): sooner is refused again, and counts against this worker.
        if (response.status === 429) notBefore = retryAfterMs(response.headers, MAX_RETRY_AFTER_MS);
      } catch (error) {
        if (signal.aborted) return;
        this.lastError = describe(error);
        // A status the contract does not list, from something in front of the orchestrator: a
        // gateway's 503 (no healthy upstream, overload, maintenance) is a transient refusal, its
        // `Retry-After` a hint taken as a registration's 503 is: at most the longest backoff.
        const unlisted = error instanceof UnknownStatusError ? (error.response as UnlistedAnswer) : undefined;
        if (unlisted?.status === 503) {
          this.lastError = 'heartbeat answered 503';
          const hint = retryAfterMs(unlisted.headers, MAX_RETRY_AFTER_MS);
          notBefore = hint === undefined ? undefined : Math.min(hint, this.options.maxBackoffMs);
        }
      }
      // The longest wait after which one heartbeat, given its whole call deadline, still lands
      // before the renew deadline: a later one would find this worker fenced.
      const latestMs = this.lease.renewBy - heartbeatCallDeadlineMs(intervalMs, timeoutMs) - this.now();
      wait = heartbeatRetryMs(Math.min(intervalMs, this.delay(failures)), notBefore, latestMs);
      failures++;
      this.current = {
        status: 'registered',
        heartbeatIntervalMs: intervalMs,
        heartbeatTimeoutMs: timeoutMs,
        consecutiveFailures: failures,
        lastError: this.lastError!,
      };
      logger.warn({ failures, retryInMs: wait, error: this.lastError }, 'heartbeat failed; retrying');
    }
  }

  private lastError: string | undefined;

  /**
   * The orchestrator no longer counts this registration (a heartbeat answered 404, 401 or 403):
   * what the worker runs is no longer its to run — the orchestrator forgot it with the worker
   * (restarted, or removed an Offline worker), or, unregistered while live (an admin's
   * `DELETE /api/workers/{id}`), dispatches it again once this lease has ended. As a kubelet
   * kills the pods of a node object that was deleted, and a Buildkite agent stops on a lost
   * registration, the worker fences at once: its lease is void, it cancels what it runs and
   * takes nothing new until the registration again is acknowledged. Outcomes it already has are
   * kept, and still answered to a repeated execute call.
   */
  private forgotten(reason: string): void {
    if (!this.lease.revoke()) return;
    this.hooks?.onFenced?.(`fenced: ${reason}`);
  }

  private delay(attempt: number): number {
    return backoffDelay(attempt, this.options.initialBackoffMs, this.options.maxBackoffMs);
  }
}

/**
 * The longest `Retry-After` a registration waits (ms): an hour. The orchestrator's, on a 409
 * `WorkerIdTaken`, is the seconds until the holder's heartbeat lease ends (its
 * `--heartbeat-timeout` at most, 120 s by default); on a 429 `RateLimited` the seconds until the
 * caller's one-minute window resets; on a 503 `TooManyWorkers` or `TooManyPipelines` the seconds
 * until the registry expects to remove an entry (up to the heartbeat timeout plus
 * `--offline-retention`, 12 min by default), which a registration takes as a hint and waits at
 * most `maxBackoffMs` of. A longer one is retried after this.
 */
export const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;

/**
 * How long a failed heartbeat waits before the next one (ms): `backoffMs` (the backoff, at most
 * the interval), or a 429's `Retry-After` (`retryAfter`, ms) where that is longer, but at most
 * `latestMs`: the renew deadline less the heartbeat call's deadline less now, so that the next
 * heartbeat, even one answered at its call deadline, is acknowledged before the worker fences
 * (waiting longer would fence it for certain, the lease ending before the next heartbeat is even
 * sent). Never less than `backoffMs` (`latestMs` may be negative: the lease ends sooner than one
 * call may take). RFC 9110 §10.2.3 (`Retry-After` on 429, RFC 6585 §4).
 */
export function heartbeatRetryMs(backoffMs: number, retryAfter: number | undefined, latestMs: number): number {
  return Math.max(backoffMs, Math.min(retryAfter ?? 0, latestMs));
}

/** What a call rejected with `UnknownStatusError` got (the client's answer: status, headers). */
interface UnlistedAnswer {
  status: number;
  headers?: { get(name: string): string | null };
}

/**
 * Waits `ms`; false when `signal` aborted first. Any length: the heartbeat interval comes from
 * the orchestrator's answer and the backoff from the options.
 */
function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  return longSleep(ms, signal);
}

/** An error answer as one line: its status code and message (`ValidationFailed: body.workerNode.id: …`). */
function errorText(body: ErrorBody | null | undefined): string {
  return `${body?.code ?? 'error'}: ${body?.errorMessage ?? JSON.stringify(body)}`;
}

/** Milliseconds as seconds, to the millisecond (`2.25`). */
function seconds(ms: number): number {
  return Math.round(ms) / 1000;
}

/**
 * The credential `file` holds (undefined when it is missing or empty).
 * @throws the read's error but ENOENT
 */
function credentialIn(file: string): string | undefined {
  try {
    const credential = readFileSync(file, 'utf8').trim();
    return credential === '' ? undefined : credential;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Whether a registration attempt's failure proves that the attempt never reached the orchestrator:
 * the client's `Unreachable` (no connection made: refused, unknown host, connect timeout, or a
 * TLS handshake that failed where the client saw it). Every other failure may come after the
 * orchestrator served it: a reset, a close (over https too, where a close before the first byte
 * is also how TLS 1.3 refuses a client certificate), a timeout, an answer that cannot be read.
 */
function provesNotServed(error: unknown): boolean {
  return error instanceof MpdClientError && error.code === 'Unreachable';
}

function describe(error: unknown): string {
  if (error instanceof MpdClientError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}
