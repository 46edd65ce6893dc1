import type { HeartbeatCancel, WorkerNode, WorkerNodeRegistration } from '@mpd/contract';

/** What changed in a {@link NodeRegistry}. */
export interface NodeRegistryEvent {
  /**
   * - `registered`: a worker registered (or registered again, replacing its details);
   * - `replaced`: another incarnation (a new process) registered under a known id: the process
   *   that held it crashed, or is frozen or cut off. What ran on the old incarnation is lost at
   *   once, and can no longer run once the old incarnation's heartbeat lease has ended
   *   (`leaseRemainingMs`): its module hosts kill their process groups then, and a thawed or
   *   reconnected old process fences itself. Emitted before the new registration takes the id
   *   (cancels requested meanwhile are the old incarnation's, and dropped with it), then
   *   `registered`;
   * - `heartbeat`: a worker reported its load (an `Offline` worker that does is live again);
   * - `unregistered`: a worker was removed (it, or the admin, unregistered it; in a cluster
   *   without tokens, anyone). The process may be live and still run modules (an admin's or a
   *   stranger's unregister): they can no longer run once its heartbeat lease has ended
   *   (`leaseRemainingMs`), as for `replaced`; a worker unregisters itself only once drained;
   * - `offline`: a worker's heartbeats stopped for longer than the timeout (reported once
   *   per outage by {@link NodeRegistry.sweep});
   * - `removed`: an `Offline` worker was removed by {@link NodeRegistry.sweep}, the offline
   *   retention after it went Offline (always after its `offline`). Its attempts were lost when it
   *   went Offline and its heartbeat lease ended then; its pending cancels go with it. Should it
   *   come back, its heartbeats are answered 404 and it registers again (a new entry).
   */
  type: 'registered' | 'replaced' | 'heartbeat' | 'unregistered' | 'offline' | 'removed';
  workerId: string;
  /**
   * `replaced` and `unregistered` only: how long the old incarnation's (the unregistered
   * process's) heartbeat lease still runs (ms, 0 when it has ended): its last heartbeat plus
   * the heartbeat timeout, less now, at most the timeout. The worker holds its
   * lease no longer than that (it counts from when it *sent* that heartbeat), so a new attempt
   * of what the old incarnation ran may start once it has passed, without overlapping it.
   */
  leaseRemainingMs?: number;
}

/** Called on every {@link NodeRegistryEvent}; runs synchronously inside the change. */
export type NodeRegistryListener = (event: NodeRegistryEvent) => void;

/**
 * The orchestrator's view of its workers. The registry owns each worker's `status`,
 * `currentLoad` and `lastHeartbeat`; status is derived when read:
 * `Offline` when the last heartbeat is older than the timeout, else `Draining` when
 * drained, else `Busy` when `currentLoad >= capabilities.maxParallelModules`, else `Available`.
 */
export interface NodeRegistry {
  /**
   * How long after its last heartbeat a worker counts as `Offline`, in ms. Workers learn it at
   * registration (`heartbeatTimeoutSeconds`) and fence themselves by it.
   */
  readonly heartbeatTimeoutMs: number;
  /**
   * Registers a worker, or registers it again (same id): endpoint, capabilities and
   * pipeline are replaced, `lastHeartbeat` becomes now. The registration's `currentLoad`
   * is taken (0 when absent); its `status` and `lastHeartbeat` are ignored. The worker keeps
   * its credential only when the registration presents it (`options.credential`); any other
   * registration of the id gets a new one, and the old one stops working. A registration of a
   * known id with another `options.incarnation` emits `replaced` (then `registered`) and drops
   * the id's pending cancels; the same incarnation (or none, twice) is the same process.
   *
   * With `options.exclusive`, a registration of an id a live worker (any status but `Offline`)
   * holds is refused unless it presents that worker's credential, whatever its incarnation (the
   * README's "Who can take a live worker's id": not by registering; unregistering frees it, which
   * is open without tokens), or is the holder's own **retry** after a lost
   * answer: it carries the holder's registration key (`options.retryKey`, compared by SHA-256 in
   * constant time), the holder's incarnation and the same registration (id, endpoint,
   * capabilities, pipeline), a greater `options.sequence` than any the registry served under that
   * key, and no request has used the holder's credential ({@link NodeRegistry.authenticate}, or a
   * registration presenting it). A retry revokes that unused credential and issues a new one;
   * the same process, it keeps its cancels and emits no `replaced`. The key is what proves the
   * caller is that process: the incarnation is no secret, and proves nothing alone. A stale
   * duplicate of a served attempt (the holder's key with the same or a smaller sequence) is
   * refused `WorkerIdTaken` even past the holder's lease (while the id is not yet removed), and
   * changes nothing; when the holder's credential is still unused and the incarnation is the
   * holder's, its `retryAfterSeconds` is 1 (the caller has the key: its next attempt is the
   * retry).
   * @throws RegistrationError `WorkerIdTaken` (with `options.exclusive`; `retryAfterSeconds`: the
   *   seconds until the holder's heartbeat lease ends, after which it is `Offline` unless it
   *   heartbeats again); `TooManyWorkers` for a new id when the registry is full;
   *   `TooManyPipelines` for a new distinct pipeline past the bound (both with
   *   `retryAfterSeconds`). A known id registering again is never refused for room.
   */
  register(node: WorkerNodeRegistration, options?: RegisterOptions): WorkerNode;
  /** The incarnation the worker registered with, or `undefined` (none given, or no such worker). */
  incarnationOf(workerId: string): string | undefined;
  /** The worker's credential (issued at registration), or `undefined`. Never part of a `WorkerNode`. */
  credentialOf(workerId: string): string | undefined;
  /** The id of the worker holding this credential, or `undefined`. */
  workerWithCredential(credential: string): string | undefined;
  /**
   * The id of the worker holding this credential, or `undefined`, as
   * {@link NodeRegistry.workerWithCredential}; and records that the credential was used (a
   * request presented it), so that no registration retry revokes it from then on (see
   * {@link NodeRegistry.register}). Called once per request that presents a bearer token.
   */
  authenticate(credential: string): string | undefined;
  /**
   * Whether the worker's current credential ({@link NodeRegistry.credentialOf}) has been used:
   * a request presented it ({@link NodeRegistry.authenticate}) or a registration did. False for
   * one no request has used yet (the worker may not have read it: its registration answer may
   * have been lost) and for an unknown id. The runner judges a worker's 401/403 to a credential
   * not used yet as a refusal of a worker still registering, not a broken endpoint.
   */
  credentialUsed(workerId: string): boolean;
  /**
   * Records a heartbeat and returns the worker as {@link NodeRegistry.snapshotOf} has it
   * (shared, frozen: read it, do not keep it); `undefined` when no worker has this id (it
   * should register again).
   * @throws RegistrationError `WorkerReplaced` when `options.incarnation` is given and the worker
   *   registered with another one (a heartbeat without one is taken, as older workers send none).
   */
  heartbeat(workerId: string, currentLoad: number, report?: HeartbeatReport): Readonly<WorkerNode> | undefined;
  /**
   * The `executionId`s the worker's last heartbeat said it runs (kept as given, not copied);
   * `undefined` when that heartbeat listed none (a worker that does not report them), when it
   * sent none since it registered, or when no worker has this id.
   */
  executionsOf(workerId: string): readonly string[] | undefined;
  /**
   * The `executionId`s the worker's last heartbeat said finished there since its previous
   * acknowledged heartbeat, their outcomes kept for a re-sent execute (the heartbeat's
   * `finished`; kept as given); `undefined` as for {@link NodeRegistry.executionsOf}.
   */
  finishedOf(workerId: string): readonly string[] | undefined;
  /** A worker with its current status, or `undefined`. */
  get(workerId: string): WorkerNode | undefined;
  /** Every registered worker (including `Offline` ones) with its current status, in registration order. */
  list(): WorkerNode[];
  /**
   * The same as {@link NodeRegistry.list}, for callers that only read it (serialise, count,
   * place): the nodes may be shared between calls and are frozen, so nothing is copied. The
   * scheduler reads the workers every time it places modules, and the list and health routes
   * serialise or count them at once.
   */
  snapshot(): readonly WorkerNode[];
  /** One worker as {@link NodeRegistry.snapshot} has it (shared, frozen), or `undefined`. */
  snapshotOf(workerId: string): WorkerNode | undefined;
  /**
   * Removes a worker (and its pending cancels); `false` when no worker has this id.
   * @throws RegistrationError `WorkerReplaced`, as {@link NodeRegistry.heartbeat} does.
   */
  unregister(workerId: string, options?: IncarnationOptions): boolean;
  /**
   * Marks a worker as draining: it reports `Draining` while live and its heartbeat
   * responses carry `shouldDrain: true`. Kept when the worker registers again.
   * `false` when no worker has this id.
   * @throws RegistrationError `WorkerReplaced`, as {@link NodeRegistry.heartbeat} does.
   */
  drain(workerId: string, options?: IncarnationOptions): boolean;
  /**
   * Asks the worker to cancel an execution through its heartbeat answers
   * ({@link NodeRegistry.cancelsFor}) until {@link NodeRegistry.cancelSettled}: for abandoned
   * attempts whose cancel call may not get through. Kept while the worker is `Offline` (it hears
   * of it when it is back), dropped when it unregisters or is replaced. At most
   * `MAX_HEARTBEAT_CANCELS` per worker: the oldest goes first. `false` when no worker has this id.
   */
  requestCancel(workerId: string, executionId: string, reason: string): boolean;
  /** The cancels the worker's next heartbeat answer carries, oldest first (shared, frozen). */
  cancelsFor(workerId: string): readonly HeartbeatCancel[];
  /** The worker acknowledged the cancel (or the execution ended): stop asking. */
  cancelSettled(workerId: string, executionId: string): void;
  /**
   * Emits `offline` for each worker whose heartbeat timeout passed since it was last
   * live, and returns their ids; then removes (event `removed`) each worker Offline for longer
   * than the offline retention. Call it periodically (`startOrchestrator` does).
   */
  sweep(): string[];
  /** Subscribes to changes; returns a function that unsubscribes. */
  onChange(listener: NodeRegistryListener): () => void;
}

/**
 * What a heartbeat reports besides the load (see {@link NodeRegistry.heartbeat}): the
 * executions the worker runs, and its incarnation (a stale one is refused, `WorkerReplaced`).
 */
export interface HeartbeatReport extends IncarnationOptions {
  /** The executions the worker runs now (the heartbeat's `executions`); undefined for a worker that does not say. */
  executions?: readonly string[] | undefined;
  /** The executions that finished there since its last acknowledged heartbeat (the heartbeat's `finished`); undefined when it does not say. */
  finished?: readonly string[] | undefined;
}

/** Options of {@link NodeRegistry.register}. */
export interface RegisterOptions {
  /**
   * The credential the worker presents (from an earlier registration). When it is the id's
   * current credential, the caller takes the id even from a live holder, and the same process
   * (the same incarnation) keeps it; otherwise, and for a new process (another incarnation, a
   * restart with a credential file), the registration gets a new one: an existing credential is
   * never handed to a caller that did not present it, and calls on their way to an old process
   * are never taken by a new one (it holds none of the old one's cancel tombstones).
   */
  credential?: string | undefined;
  /**
   * Refuse (with `RegistrationError` `WorkerIdTaken`) to take over an id held by a live worker
   * unless its credential is presented (what the HTTP API does). Off, a registration replaces
   * any earlier one, with a new credential (for in-process callers such as tests and benchmarks).
   * @default false
   */
  exclusive?: boolean;
  /**
   * The registering process's incarnation (see {@link NodeRegistryEvent} `replaced`).
   * @default none: the registration counts as the same process as an earlier one without it
   */
  incarnation?: string | undefined;
  /**
   * The registering process's registration key (the `Idempotency-Key` header, without its
   * quotes): a secret the process makes at its start and sends on every registration. Kept as
   * its SHA-256 only. With `sequence`, it makes the process's registration after a lost answer
   * a retry (see {@link NodeRegistry.register}).
   * @default none: never a retry
   */
  retryKey?: string | undefined;
  /**
   * The registration's sequence number in the registering process (the body's `sequence`):
   * greater at each attempt.
   * @default none: never a retry
   */
  sequence?: number | undefined;
}

/** Options of the calls a worker makes about itself. */
export interface IncarnationOptions {
  /**
   * The caller's incarnation; another than the registered one is refused (`WorkerReplaced`).
   * @default none: not checked (older workers, operators)
   */
  incarnation?: string | undefined;
}
