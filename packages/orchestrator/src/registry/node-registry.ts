import { hash as digest, randomBytes } from 'node:crypto';
import type {
  LoadedPipeline,
  WorkerCapabilities,
  WorkerNode,
  WorkerNodeRegistration,
  WorkerStatus,
} from '@mpd/contract';
import { RegistrationError } from '../errors.js';
import { requirePositive } from '../orchestrator-options.js';

/** What changed in a {@link NodeRegistry}. */
export interface NodeRegistryEvent {
  /**
   * - `registered`: a worker registered (or registered again, replacing its details);
   * - `heartbeat`: a worker reported its load (an `Offline` worker that does is live again);
   * - `unregistered`: a worker was removed;
   * - `offline`: a worker's heartbeats stopped for longer than the timeout (reported once
   *   per outage by {@link NodeRegistry.sweep}).
   */
  type: 'registered' | 'heartbeat' | 'unregistered' | 'offline';
  workerId: string;
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
   * Registers a worker, or registers it again (same id): endpoint, capabilities and
   * pipeline are replaced, `lastHeartbeat` becomes now. The registration's `currentLoad`
   * is taken (0 when absent); its `status` and `lastHeartbeat` are ignored. The worker keeps
   * its credential only when the registration presents it (`options.credential`); any other
   * registration of the id gets a new one, and the old one stops working.
   */
  register(node: WorkerNodeRegistration, options?: RegisterOptions): WorkerNode;
  /** The worker's credential (issued at registration), or `undefined`. Never part of a `WorkerNode`. */
  credentialOf(workerId: string): string | undefined;
  /** The id of the worker holding this credential, or `undefined`. */
  workerWithCredential(credential: string): string | undefined;
  /**
   * Records a heartbeat and returns the worker as {@link NodeRegistry.snapshotOf} has it
   * (shared, frozen: read it, do not keep it); `undefined` when no worker has this id (it
   * should register again).
   */
  heartbeat(workerId: string, currentLoad: number): Readonly<WorkerNode> | undefined;
  /** A worker with its current status, or `undefined`. */
  get(workerId: string): WorkerNode | undefined;
  /** Every registered worker (including `Offline` ones) with its current status, in registration order. */
  list(): WorkerNode[];
  /**
   * The same as {@link NodeRegistry.list}, for callers that only read it: the nodes may be
   * shared between calls and are frozen, so nothing is copied. The scheduler asks for the
   * workers every time it places modules and uses this when the registry has it.
   */
  snapshot?(): readonly WorkerNode[];
  /** One worker as {@link NodeRegistry.snapshot} has it (shared, frozen), or `undefined`. */
  snapshotOf?(workerId: string): WorkerNode | undefined;
  /** Removes a worker; `false` when no worker has this id. */
  unregister(workerId: string): boolean;
  /**
   * Marks a worker as draining: it reports `Draining` while live and its heartbeat
   * responses carry `shouldDrain: true`. Kept when the worker registers again.
   * `false` when no worker has this id.
   */
  drain(workerId: string): boolean;
  /**
   * Emits `offline` for each worker whose heartbeat timeout passed since it was last
   * live, and returns their ids. Call it periodically (`startOrchestrator` does).
   */
  sweep(): string[];
  /** Subscribes to changes; returns a function that unsubscribes. */
  onChange(listener: NodeRegistryListener): () => void;
}

/**
 * Every worker, for a caller that only reads them (serialises, counts, places): the registry's
 * shared frozen {@link NodeRegistry.snapshot} when it has one, else {@link NodeRegistry.list}.
 */
export function readNodes(registry: NodeRegistry): readonly WorkerNode[] {
  return registry.snapshot?.() ?? registry.list();
}

/** Options of {@link NodeRegistry.register}. */
export interface RegisterOptions {
  /**
   * The credential the worker presents (from an earlier registration). When it is the id's
   * current credential, the worker keeps it; otherwise the registration gets a new one: an
   * existing credential is never handed to a caller that did not present it.
   */
  credential?: string | undefined;
  /**
   * Refuse (with `RegistrationError` `WorkerIdTaken`) to take over an id held by a live worker
   * unless its credential is presented (what the HTTP API does). Off, a registration replaces
   * any earlier one, with a new credential (for in-process callers such as tests and benchmarks).
   * @default false
   */
  exclusive?: boolean;
}

/** Options of {@link InMemoryNodeRegistry}. */
export interface InMemoryNodeRegistryOptions {
  /** How long after its last heartbeat a worker counts as `Offline`, in milliseconds. */
  heartbeatTimeoutMs: number;
  /**
   * The clock, in epoch milliseconds (inject a fake one in tests).
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
  /** True once `sweep` reported the current outage. */
  reportedOffline: boolean;
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
  readonly #pipelines = new Map<string, { pipeline: Readonly<LoadedPipeline>; holders: number }[]>();
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #onListenerError: (error: unknown, event: NodeRegistryEvent) => void;

  /** @throws OrchestratorConfigError when `heartbeatTimeoutMs` is not a positive number. */
  constructor(options: InMemoryNodeRegistryOptions) {
    requirePositive('heartbeatTimeoutMs', options.heartbeatTimeoutMs);
    this.#timeoutMs = options.heartbeatTimeoutMs;
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
    if (options.exclusive && previous && !sameCredential && !this.#isOffline(previous, this.#now())) {
      throw new RegistrationError(
        'WorkerIdTaken',
        `Worker id '${node.id}' is held by a live worker; register with its credential, or wait until it is Offline`,
      );
    }
    // Only the holder keeps the credential: anyone else gets a new one, so registering under an
    // id never reveals the credential the orchestrator sends to that id's worker.
    const credential = sameCredential ? previous.credential : newCredential();
    if (previous) {
      this.#byCredential.delete(hash(previous.credential));
      this.#release(previous.pipeline);
    }
    this.#byCredential.set(hash(credential), node.id);
    const entry: Entry = {
      credential,
      id: node.id,
      endpoint: node.endpoint,
      capabilities: deepFreeze(structuredClone(node.capabilities)),
      pipeline: node.pipeline == null ? node.pipeline : this.#hold(node.pipeline),
      currentLoad: checkLoad(node.currentLoad ?? 0),
      lastHeartbeatMs: this.#now(),
      lastHeartbeatIso: undefined,
      shared: undefined,
      draining: previous?.draining ?? false,
      reportedOffline: false,
    };
    this.#entries.set(node.id, entry);
    this.#emit({ type: 'registered', workerId: node.id });
    return this.#view(entry);
  }

  heartbeat(workerId: string, currentLoad: number): Readonly<WorkerNode> | undefined {
    const entry = this.#entries.get(workerId);
    if (!entry) return undefined;
    entry.currentLoad = checkLoad(currentLoad);
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

  credentialOf(workerId: string): string | undefined {
    return this.#entries.get(workerId)?.credential;
  }

  workerWithCredential(credential: string): string | undefined {
    return this.#byCredential.get(hash(credential));
  }

  unregister(workerId: string): boolean {
    const entry = this.#entries.get(workerId);
    if (!entry) return false;
    this.#entries.delete(workerId);
    this.#byCredential.delete(hash(entry.credential));
    this.#release(entry.pipeline);
    this.#emit({ type: 'unregistered', workerId });
    return true;
  }

  drain(workerId: string): boolean {
    const entry = this.#entries.get(workerId);
    if (!entry) return false;
    entry.draining = true;
    entry.shared = undefined;
    return true;
  }

  sweep(): string[] {
    const now = this.#now();
    const lost = [...this.#entries.values()].filter((entry) => !entry.reportedOffline && this.#isOffline(entry, now));
    for (const entry of lost) entry.reportedOffline = true;
    for (const entry of lost) this.#emit({ type: 'offline', workerId: entry.id });
    return lost.map((entry) => entry.id);
  }

  onChange(listener: NodeRegistryListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** The shared frozen copy of `pipeline` (made on first sight), now held by one more entry. */
  #hold(pipeline: LoadedPipeline): Readonly<LoadedPipeline> {
    const known = this.#pipelines.get(pipeline.fingerprint) ?? [];
    const same = known.find((candidate) => sameJson(candidate.pipeline, pipeline));
    if (same) {
      same.holders++;
      return same.pipeline;
    }
    const copy = deepFreeze(structuredClone(pipeline));
    known.push({ pipeline: copy, holders: 1 });
    this.#pipelines.set(pipeline.fingerprint, known);
    return copy;
  }

  #release(pipeline: Readonly<LoadedPipeline> | null | undefined): void {
    if (pipeline == null) return;
    const known = this.#pipelines.get(pipeline.fingerprint);
    const index = known?.findIndex((candidate) => candidate.pipeline === pipeline) ?? -1;
    if (index < 0) return;
    if (--known![index]!.holders > 0) return;
    known!.splice(index, 1);
    if (known!.length === 0) this.#pipelines.delete(pipeline.fingerprint);
  }

  #isOffline(entry: Entry, now: number): boolean {
    return now - entry.lastHeartbeatMs > this.#timeoutMs;
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
    entry.lastHeartbeatIso ??= new Date(entry.lastHeartbeatMs).toISOString();
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

/** A fresh worker credential: 32 random bytes. */
function newCredential(): string {
  return `mpdw_${randomBytes(32).toString('base64url')}`;
}

/**
 * Credentials are looked up by their SHA-256, never compared as plain strings. One-shot
 * `crypto.hash` (Node 20.12+): every authenticated request hashes its token, and a `Hash`
 * object per call costs several times as much.
 */
function hash(credential: string): string {
  return digest('sha256', credential, 'base64url');
}

/** Whether two JSON values are equal (same keys in the same order, same values). */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keysA = Object.keys(a);
  const keysB = Object.keys(b);
  if (keysA.length !== keysB.length) return false;
  for (let index = 0; index < keysA.length; index++) {
    const key = keysA[index]!;
    if (key !== keysB[index]) return false;
    if (!sameJson((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key])) return false;
  }
  return true;
}

/** Freezes a JSON value and everything in it. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/**
 * A deep copy of a JSON value (what registrations hold after validation): much cheaper than
 * `structuredClone` for these small objects, which every heartbeat and listing copies.
 */
function copyJson<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(copyJson) as T;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const child = copyJson((value as Record<string, unknown>)[key]);
    // An own `__proto__` key (JSON.parse makes one) stays a key, as structuredClone keeps it.
    if (key === '__proto__')
      Object.defineProperty(copy, key, { value: child, enumerable: true, writable: true, configurable: true });
    else copy[key] = child;
  }
  return copy as T;
}

function checkLoad(currentLoad: number): number {
  if (!Number.isInteger(currentLoad) || currentLoad < 0) {
    throw new RangeError(`currentLoad must be a non-negative integer, got ${String(currentLoad)}`);
  }
  return currentLoad;
}
