import { isDeepStrictEqual } from 'node:util';
import {
  type HeartbeatCancel,
  isoTime,
  type LoadedPipeline,
  MAX_HEARTBEAT_CANCELS,
  type WorkerCapabilities,
  type WorkerNode,
  type WorkerNodeRegistration,
  type WorkerStatus,
} from '@mpd/contract';
import { RegistrationError } from '../errors.js';
import {
  checkRegistryBounds,
  DEFAULT_ORCHESTRATOR_OPTIONS,
  type RegistryBound,
  requirePositive,
  type ResolvedOrchestratorOptions,
} from '../orchestrator-options.js';
import { credentialHash, newCredential } from './credentials.js';
import { repeats, type RetryRecord, retryRecord, sameKey } from './registration-retry.js';
import { copyJson, deepFreeze } from './frozen-json.js';
import type {
  HeartbeatReport,
  IncarnationOptions,
  NodeRegistry,
  NodeRegistryEvent,
  NodeRegistryListener,
  RegisterOptions,
} from './node-registry.js';

/**
 * Options of {@link InMemoryNodeRegistry}. Its bounds (`offlineRetentionMs`, `maxWorkers`,
 * `maxPipelines`) are the orchestrator's options of the same names, with the same defaults:
 * 10 minutes, 10,000 workers, 64 pipelines.
 */
export interface InMemoryNodeRegistryOptions extends Partial<Pick<ResolvedOrchestratorOptions, RegistryBound>> {
  /** How long after its last heartbeat a worker counts as `Offline`, in milliseconds. */
  heartbeatTimeoutMs: number;
  /**
   * The clock, in epoch milliseconds: what `lastHeartbeat` records and expiry is measured by.
   * Inject one in tests that are about expiry, and move it on instead of sleeping past the
   * timeout (a real short timeout expires whenever a loaded machine stalls).
   * @default Date.now
   */
  now?: () => number;
  /**
   * Called when a listener throws; the other listeners still run and the registry
   * change stands.
   * @default emits a process warning
   */
  onListenerError?: (error: unknown, event: NodeRegistryEvent) => void;
}

interface Entry {
  id: string;
  endpoint: string;
  /** Frozen: views share it ({@link InMemoryNodeRegistry.snapshot}) or copy it. */
  capabilities: Readonly<WorkerCapabilities>;
  /** Frozen, like `capabilities`. */
  pipeline: Readonly<LoadedPipeline> | null | undefined;
  currentLoad: number;
  lastHeartbeatMs: number;
  /** `lastHeartbeatMs` as an ISO string, made when first needed. */
  lastHeartbeatIso: string | undefined;
  /** The frozen node {@link InMemoryNodeRegistry.snapshot} last gave out, while it is still current. */
  shared: WorkerNode | undefined;
  draining: boolean;
  /** The secret issued at registration; see {@link NodeRegistry.credentialOf}. */
  credential: string;
  /**
   * Whether `credential` has been used: a request authenticated with it
   * ({@link NodeRegistry.authenticate}), or a registration presented it. Once it has, its
   * holder provably has it, and no retry revokes it (see {@link NodeRegistry.register}).
   */
  credentialUsed: boolean;
  /** The registration key's digest, sequence and body digest of the registration, when it sent a key. */
  retry: RetryRecord | undefined;
  /** True once `sweep` reported the current outage. */
  reportedOffline: boolean;
  /** What the last heartbeat listed as running; see {@link NodeRegistry.executionsOf}. */
  executions: readonly string[] | undefined;
  /** What the last heartbeat listed as finished; see {@link NodeRegistry.finishedOf}. */
  finished: readonly string[] | undefined;
  /** The process's incarnation, when its registration named one. */
  incarnation: string | undefined;
  /** Pending cancels by executionId, oldest first (see {@link NodeRegistry.requestCancel}). */
  cancels: Map<string, HeartbeatCancel>;
  /** `cancels` as {@link NodeRegistry.cancelsFor} gives them, made when first needed after a change. */
  cancelList: readonly HeartbeatCancel[] | undefined;
}

const NO_CANCELS: readonly HeartbeatCancel[] = Object.freeze([]);

/** One distinct pipeline the registry holds, with how many entries hold it. */
interface HeldPipeline {
  pipeline: Readonly<LoadedPipeline>;
  holders: number;
}

/** A {@link NodeRegistry} held in memory (lost when the orchestrator stops). */
export class InMemoryNodeRegistry implements NodeRegistry {
  readonly #entries = new Map<string, Entry>();
  /** sha256(credential) → worker id. */
  readonly #byCredential = new Map<string, string>();
  readonly #listeners = new Set<NodeRegistryListener>();
  /**
   * The pipelines workers loaded, one frozen copy per distinct one, shared by the workers that
   * registered it (every worker of a cluster usually has the same), with how many entries hold it.
   */
  readonly #pipelines = new Map<string, HeldPipeline[]>();
  /** How many distinct pipelines `#pipelines` holds. */
  #pipelineCount = 0;
  /**
   * The earliest time (epoch ms) an entry may be removed by the sweep, as far as the registry
   * knows (a lower bound: heartbeats and unregisters only move it later): for `Retry-After`.
   */
  #nextRemovalMs = Number.POSITIVE_INFINITY;
  readonly heartbeatTimeoutMs: number;
  readonly #offlineRetentionMs: number;
  readonly #maxWorkers: number;
  readonly #maxPipelines: number;
  readonly #now: () => number;
  readonly #onListenerError: (error: unknown, event: NodeRegistryEvent) => void;

  /**
   * @throws OrchestratorConfigError when `heartbeatTimeoutMs` is not a positive number, or a
   *   bound is out of range (see {@link checkRegistryBounds}).
   */
  constructor(options: InMemoryNodeRegistryOptions) {
    requirePositive('heartbeatTimeoutMs', options.heartbeatTimeoutMs);
    checkRegistryBounds(options);
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs;
    this.#offlineRetentionMs = options.offlineRetentionMs ?? DEFAULT_ORCHESTRATOR_OPTIONS.offlineRetentionMs;
    this.#maxWorkers = options.maxWorkers ?? DEFAULT_ORCHESTRATOR_OPTIONS.maxWorkers;
    this.#maxPipelines = options.maxPipelines ?? DEFAULT_ORCHESTRATOR_OPTIONS.maxPipelines;
    this.#now = options.now ?? Date.now;
    this.#onListenerError =
      options.onListenerError ??
      ((error, event) =>
        process.emitWarning(`NodeRegistry listener failed on ${event.type} of '${event.workerId}': ${String(error)}`));
  }

  register(node: WorkerNodeRegistration, options: RegisterOptions = {}): WorkerNode {
    const previous = this.#entries.get(node.id);
    // Looked up by hash, like every credential: whoever presents this id's credential is its holder.
    const sameCredential =
      previous !== undefined &&
      options.credential !== undefined &&
      this.workerWithCredential(options.credential) === node.id;
    const now = this.#now();
    const attempt = retryRecord(node, options.retryKey, options.sequence);
    // The key first, compared in constant time (`sameKey`), then the incarnation: the time taken
    // tells a caller without the key nothing of the incarnation.
    const keyHeld = previous !== undefined && sameKey(previous.retry, attempt);
    // The caller has the holder's key and incarnation, and no request has used the holder's
    // credential: the holder's own process, which lost the answer that carried the credential.
    const ownUnread =
      keyHeld &&
      !previous.credentialUsed &&
      options.incarnation !== undefined &&
      previous.incarnation === options.incarnation;
    // Its retry: the same registration again with a greater sequence.
    const retry = ownUnread && !sameCredential && repeats(previous.retry, attempt);
    // A stale duplicate of an attempt already served under the holder's key (the same or a
    // smaller sequence: a gateway's late copy): refused whatever the holder's lease, so that it
    // never revokes a credential or renews the lease of a stalled holder not yet swept.
    const stale = keyHeld && !sameCredential && attempt!.sequence <= previous.retry!.sequence;
    if (previous && !sameCredential && !retry && (stale || (options.exclusive && !this.#isOffline(previous, now)))) {
      // Past the holder's lease (its last heartbeat plus the timeout) it is Offline, unless it
      // heartbeats again; bounded by the timeout (a clock that stepped back cannot lengthen it).
      const leaseRemainingMs = Math.min(
        this.heartbeatTimeoutMs,
        Math.max(0, previous.lastHeartbeatMs + this.heartbeatTimeoutMs - now),
      );
      // The holder's key with a sequence already served, and the holder's credential unread:
      // the caller (who has the key) is the holder's own process, whose next attempt (a greater
      // sequence) is its retry, taken at once; it need not wait out its own lease. Only a
      // caller with the key learns this.
      const ownRetryNext = stale && ownUnread;
      throw new RegistrationError(
        'WorkerIdTaken',
        `Worker id '${node.id}' is held by a live worker; register with its credential, or wait until it is Offline`,
        { retryAfterSeconds: ownRetryNext ? 1 : Math.max(1, Math.floor(leaseRemainingMs / 1000) + 1) },
      );
    }
    const currentLoad = checkLoad(node.currentLoad ?? 0);
    if (!previous && this.#entries.size >= this.#maxWorkers) {
      throw this.#full(
        'TooManyWorkers',
        `The registry holds ${this.#entries.size} workers, its limit (--max-workers ${this.#maxWorkers}, Offline ones included until removed): worker '${node.id}' cannot register until one unregisters or is removed`,
      );
    }
    const known = node.pipeline == null ? undefined : this.#known(node.pipeline);
    if (node.pipeline != null && !known) {
      // The worker's own earlier pipeline goes when it registers with this one: it makes room.
      const freed = previous?.pipeline != null && this.#heldBy(previous.pipeline)?.holders === 1 ? 1 : 0;
      if (this.#pipelineCount - freed >= this.#maxPipelines) {
        throw this.#full(
          'TooManyPipelines',
          `The registry holds ${this.#pipelineCount} distinct pipelines, its limit (--max-pipelines ${this.#maxPipelines}): worker '${node.id}' advertises another one ('${node.pipeline.name}', ${node.pipeline.fingerprint}) and cannot register until a pipeline's last worker goes`,
        );
      }
    }
    const incarnation = options.incarnation;
    // Another process under a known id: whatever the old one ran is lost now, not when (if ever)
    // its heartbeats time out (a frozen process's id would otherwise stay live for the new one).
    const replaced = previous !== undefined && previous.incarnation !== incarnation;
    if (replaced) {
      const leaseRemainingMs = Math.max(0, previous.lastHeartbeatMs + this.heartbeatTimeoutMs - this.#now());
      this.#emit({ type: 'replaced', workerId: node.id, leaseRemainingMs });
    }
    // Only the holder keeps the credential: anyone else gets a new one, so registering under an
    // id never reveals the credential the orchestrator sends to that id's worker.
    // A retry revokes the holder's credential, which no request has used (its answer was lost).
    // A new process (another incarnation) presenting the holder's credential (its credential
    // file) takes the id, but with a new credential: calls still on their way to the old process
    // carry the old one, and the new process, which holds none of the old one's cancel
    // tombstones, refuses them (401) rather than running an execute whose attempt was abandoned
    // and cancelled (round N, N3, 3).
    const keep = sameCredential && !replaced;
    const credential = keep ? previous.credential : newCredential();
    // The greatest sequence served under this key: a stale duplicate of an earlier attempt
    // (the same or a smaller number) is never a retry, whatever came in between.
    const retryKept =
      attempt !== undefined && keyHeld
        ? { ...attempt, sequence: Math.max(attempt.sequence, previous.retry!.sequence) }
        : attempt;
    if (previous) {
      this.#byCredential.delete(credentialHash(previous.credential));
      this.#release(previous.pipeline);
    }
    this.#byCredential.set(credentialHash(credential), node.id);
    const entry: Entry = {
      credential,
      credentialUsed: keep,
      retry: retryKept,
      id: node.id,
      endpoint: node.endpoint,
      capabilities: deepFreeze(structuredClone(node.capabilities)),
      pipeline: node.pipeline == null ? node.pipeline : this.#hold(node.pipeline, known),
      currentLoad,
      lastHeartbeatMs: this.#now(),
      lastHeartbeatIso: undefined,
      shared: undefined,
      draining: previous?.draining ?? false,
      reportedOffline: false,
      executions: undefined,
      finished: undefined,
      incarnation,
      // The same process keeps what it was asked to cancel; a new one never ran those executions.
      cancels: previous && !replaced ? previous.cancels : new Map(),
      cancelList: undefined,
    };
    this.#entries.set(node.id, entry);
    this.#nextRemovalMs = Math.min(this.#nextRemovalMs, this.#removalAt(entry));
    this.#emit({ type: 'registered', workerId: node.id });
    return this.#view(entry);
  }

  heartbeat(workerId: string, currentLoad: number, report: HeartbeatReport = {}): Readonly<WorkerNode> | undefined {
    const entry = this.#entries.get(workerId);
    if (!entry) return undefined;
    this.#checkIncarnation(entry, report);
    entry.currentLoad = checkLoad(currentLoad);
    entry.executions = report.executions;
    entry.finished = report.finished;
    entry.lastHeartbeatMs = this.#now();
    entry.lastHeartbeatIso = undefined;
    entry.shared = undefined;
    entry.reportedOffline = false;
    this.#emit({ type: 'heartbeat', workerId });
    // The shared, frozen node: a copy would copy the worker's pipeline (every module's name) on
    // every heartbeat, which only needs the status.
    return this.#shared(entry, this.#now());
  }

  get(workerId: string): WorkerNode | undefined {
    const entry = this.#entries.get(workerId);
    return entry && this.#view(entry);
  }

  list(): WorkerNode[] {
    const now = this.#now();
    const nodes: WorkerNode[] = [];
    for (const entry of this.#entries.values()) nodes.push(this.#view(entry, now));
    return nodes;
  }

  snapshot(): readonly WorkerNode[] {
    const now = this.#now();
    const nodes: WorkerNode[] = [];
    for (const entry of this.#entries.values()) nodes.push(this.#shared(entry, now));
    return nodes;
  }

  snapshotOf(workerId: string): WorkerNode | undefined {
    const entry = this.#entries.get(workerId);
    return entry && this.#shared(entry, this.#now());
  }

  executionsOf(workerId: string): readonly string[] | undefined {
    return this.#entries.get(workerId)?.executions;
  }

  finishedOf(workerId: string): readonly string[] | undefined {
    return this.#entries.get(workerId)?.finished;
  }

  incarnationOf(workerId: string): string | undefined {
    return this.#entries.get(workerId)?.incarnation;
  }

  credentialOf(workerId: string): string | undefined {
    return this.#entries.get(workerId)?.credential;
  }

  workerWithCredential(credential: string): string | undefined {
    return this.#byCredential.get(credentialHash(credential));
  }

  authenticate(credential: string): string | undefined {
    const workerId = this.#byCredential.get(credentialHash(credential));
    if (workerId !== undefined) this.#entries.get(workerId)!.credentialUsed = true;
    return workerId;
  }

  credentialUsed(workerId: string): boolean {
    return this.#entries.get(workerId)?.credentialUsed ?? false;
  }

  unregister(workerId: string, options?: IncarnationOptions): boolean {
    const entry = this.#entries.get(workerId);
    if (!entry) return false;
    this.#checkIncarnation(entry, options);
    // Whoever asked (the worker after its drain, an admin, anyone in a cluster without tokens),
    // a live process may still run modules under the id until its lease ends: the runs wait.
    const leaseRemainingMs = Math.min(
      this.heartbeatTimeoutMs,
      Math.max(0, entry.lastHeartbeatMs + this.heartbeatTimeoutMs - this.#now()),
    );
    this.#remove(entry, 'unregistered', leaseRemainingMs);
    return true;
  }

  drain(workerId: string, options?: IncarnationOptions): boolean {
    const entry = this.#entries.get(workerId);
    if (!entry) return false;
    this.#checkIncarnation(entry, options);
    entry.draining = true;
    entry.shared = undefined;
    return true;
  }

  requestCancel(workerId: string, executionId: string, reason: string): boolean {
    const entry = this.#entries.get(workerId);
    if (!entry) return false;
    // Asked again: the newest reason, in the newest place.
    entry.cancels.delete(executionId);
    entry.cancels.set(executionId, Object.freeze({ executionId, reason }));
    // Bounded like the answer that carries them; a worker runs at most 1024 executions at once.
    for (const oldest of entry.cancels.keys()) {
      if (entry.cancels.size <= MAX_HEARTBEAT_CANCELS) break;
      entry.cancels.delete(oldest);
    }
    entry.cancelList = undefined;
    return true;
  }

  cancelsFor(workerId: string): readonly HeartbeatCancel[] {
    const entry = this.#entries.get(workerId);
    if (!entry || entry.cancels.size === 0) return NO_CANCELS;
    // Made once per change, not per heartbeat.
    return (entry.cancelList ??= Object.freeze([...entry.cancels.values()]));
  }

  cancelSettled(workerId: string, executionId: string): void {
    const entry = this.#entries.get(workerId);
    if (entry?.cancels.delete(executionId)) entry.cancelList = undefined;
  }

  sweep(): string[] {
    const now = this.#now();
    const lost: Entry[] = [];
    const expired: Entry[] = [];
    let nextRemovalMs = Number.POSITIVE_INFINITY;
    for (const entry of this.#entries.values()) {
      if (!entry.reportedOffline && this.#isOffline(entry, now)) lost.push(entry);
      const removalAt = this.#removalAt(entry);
      if (removalAt < now) expired.push(entry);
      else nextRemovalMs = Math.min(nextRemovalMs, removalAt);
    }
    this.#nextRemovalMs = nextRemovalMs;
    for (const entry of lost) entry.reportedOffline = true;
    for (const entry of lost) this.#emit({ type: 'offline', workerId: entry.id });
    // After its `offline`: a listener hears a worker went Offline before it hears it was removed.
    for (const entry of expired) {
      // A listener may have changed it meanwhile (a registration again under its id).
      if (this.#entries.get(entry.id) === entry && this.#removalAt(entry) < now) this.#remove(entry, 'removed');
    }
    return lost.map((entry) => entry.id);
  }

  onChange(listener: NodeRegistryListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** The held pipeline equal to `pipeline`, if the registry holds one. */
  #known(pipeline: LoadedPipeline): HeldPipeline | undefined {
    // Equal JSON, whatever its key order: registrations over HTTP are parsed by zod, which builds
    // every object in its schema's key order, so for them this answers as a key-order check would.
    return this.#pipelines
      .get(pipeline.fingerprint)
      ?.find((candidate) => isDeepStrictEqual(candidate.pipeline, pipeline));
  }

  /** The held pipeline that is this very copy, if it is still held. */
  #heldBy(pipeline: Readonly<LoadedPipeline>): HeldPipeline | undefined {
    return this.#pipelines.get(pipeline.fingerprint)?.find((candidate) => candidate.pipeline === pipeline);
  }

  /**
   * The shared frozen copy of `pipeline` (made on first sight), now held by one more entry.
   * @param known what {@link InMemoryNodeRegistry.#known} answered for it
   */
  #hold(pipeline: LoadedPipeline, known: HeldPipeline | undefined): Readonly<LoadedPipeline> {
    if (known) {
      known.holders++;
      return known.pipeline;
    }
    const copy = deepFreeze(structuredClone(pipeline));
    const same = this.#pipelines.get(pipeline.fingerprint) ?? [];
    same.push({ pipeline: copy, holders: 1 });
    this.#pipelines.set(pipeline.fingerprint, same);
    this.#pipelineCount++;
    return copy;
  }

  /** One entry less holds `pipeline`: the last one releases it. */
  #release(pipeline: Readonly<LoadedPipeline> | null | undefined): void {
    if (pipeline == null) return;
    const same = this.#pipelines.get(pipeline.fingerprint);
    const index = same?.findIndex((candidate) => candidate.pipeline === pipeline) ?? -1;
    if (index < 0) return;
    if (--same![index]!.holders > 0) return;
    same!.splice(index, 1);
    this.#pipelineCount--;
    if (same!.length === 0) this.#pipelines.delete(pipeline.fingerprint);
  }

  /** Removes an entry with everything it holds (credential, pipeline, cancels), then says so. */
  #remove(entry: Entry, type: 'unregistered' | 'removed', leaseRemainingMs?: number): void {
    this.#entries.delete(entry.id);
    this.#byCredential.delete(credentialHash(entry.credential));
    this.#release(entry.pipeline);
    this.#emit({ type, workerId: entry.id, ...(leaseRemainingMs === undefined ? {} : { leaseRemainingMs }) });
  }

  /**
   * When the sweep removes the entry unless it is heard from first (once past it, as Offline is
   * once past the timeout): the offline retention after it went Offline.
   */
  #removalAt(entry: Entry): number {
    return entry.lastHeartbeatMs + this.heartbeatTimeoutMs + this.#offlineRetentionMs;
  }

  /** A refusal for want of room, with the seconds until the next removal the registry expects (at least 1). */
  #full(code: 'TooManyWorkers' | 'TooManyPipelines', message: string): RegistrationError {
    const waitMs = this.#nextRemovalMs - this.#now();
    const retryAfterSeconds = Number.isFinite(waitMs) ? Math.max(1, Math.ceil(waitMs / 1000)) : 1;
    return new RegistrationError(code, message, { retryAfterSeconds });
  }

  /** @throws RegistrationError `WorkerReplaced` when `options.incarnation` is not the entry's. */
  #checkIncarnation(entry: Entry, options: IncarnationOptions | undefined): void {
    const incarnation = options?.incarnation;
    if (incarnation === undefined || incarnation === entry.incarnation) return;
    // Names no incarnation, neither the registered one nor the caller's: this answer reaches
    // callers who are not that worker (an anonymous heartbeat without a join token, an admin's
    // drain with a wrong `?incarnation=`), and the incarnation is part of what makes a
    // registration a retry (see NodeRegistry.register).
    throw new RegistrationError(
      'WorkerReplaced',
      `Worker '${entry.id}' was replaced: another process registered under its id after this one`,
    );
  }

  #isOffline(entry: Entry, now: number): boolean {
    return now - entry.lastHeartbeatMs > this.heartbeatTimeoutMs;
  }

  #status(entry: Entry, now: number): WorkerStatus {
    if (this.#isOffline(entry, now)) return 'Offline';
    if (entry.draining) return 'Draining';
    if (entry.currentLoad >= entry.capabilities.maxParallelModules) return 'Busy';
    return 'Available';
  }

  /** The entry's frozen node for {@link InMemoryNodeRegistry.snapshot}, made again when it changed. */
  #shared(entry: Entry, now: number): WorkerNode {
    const status = this.#status(entry, now);
    if (entry.shared?.status !== status) entry.shared = Object.freeze(this.#node(entry, status, false));
    return entry.shared;
  }

  /** A copy of the entry as the contract's `WorkerNode`: callers cannot change the registry through it. */
  #view(entry: Entry, now: number = this.#now()): WorkerNode {
    return this.#node(entry, this.#status(entry, now), true);
  }

  /** The entry as a `WorkerNode`; `copy`: with copies of its capabilities and pipeline, else the frozen originals. */
  #node(entry: Entry, status: WorkerStatus, copy: boolean): WorkerNode {
    entry.lastHeartbeatIso ??= isoTime(entry.lastHeartbeatMs);
    const node: WorkerNode = {
      id: entry.id,
      endpoint: entry.endpoint,
      capabilities: copy ? copyJson(entry.capabilities) : (entry.capabilities as WorkerCapabilities),
      lastHeartbeat: entry.lastHeartbeatIso,
      currentLoad: entry.currentLoad,
      status,
    };
    if (entry.pipeline !== undefined) {
      node.pipeline =
        copy && entry.pipeline !== null ? copyJson(entry.pipeline) : (entry.pipeline as LoadedPipeline | null);
    }
    return node;
  }

  #emit(event: NodeRegistryEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (error) {
        this.#onListenerError(error, event);
      }
    }
  }
}

function checkLoad(currentLoad: number): number {
  if (!Number.isInteger(currentLoad) || currentLoad < 0) {
    throw new RangeError(`currentLoad must be a non-negative integer, got ${String(currentLoad)}`);
  }
  return currentLoad;
}
