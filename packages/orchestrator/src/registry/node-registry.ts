import { createHash, randomBytes } from 'node:crypto';
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
   * is taken (0 when absent); its `status` and `lastHeartbeat` are ignored.
   */
  register(node: WorkerNodeRegistration, options?: RegisterOptions): WorkerNode;
  /** The worker's credential (issued at registration), or `undefined`. Never part of a `WorkerNode`. */
  credentialOf(workerId: string): string | undefined;
  /** The id of the worker holding this credential, or `undefined`. */
  workerWithCredential(credential: string): string | undefined;
  /** Records a heartbeat; `undefined` when no worker has this id (it should register again). */
  heartbeat(workerId: string, currentLoad: number): WorkerNode | undefined;
  /** A worker with its current status, or `undefined`. */
  get(workerId: string): WorkerNode | undefined;
  /** Every registered worker (including `Offline` ones) with its current status, in registration order. */
  list(): WorkerNode[];
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

/** Options of {@link NodeRegistry.register}. */
export interface RegisterOptions {
  /** The credential the worker presents (from an earlier registration). */
  credential?: string | undefined;
  /**
   * Refuse (with `RegistrationError` `WorkerIdTaken`) to take over an id held by a live worker
   * unless the same credential is presented. Off, a registration replaces any earlier one.
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
  capabilities: WorkerCapabilities;
  pipeline: LoadedPipeline | null | undefined;
  currentLoad: number;
  lastHeartbeatMs: number;
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
    const sameCredential = previous !== undefined && options.credential === previous.credential;
    if (options.exclusive && previous && !sameCredential && !this.#isOffline(previous, this.#now())) {
      throw new RegistrationError(
        'WorkerIdTaken',
        `Worker id '${node.id}' is held by a live worker; register with its credential, or wait until it is Offline`,
      );
    }
    const credential = previous && (sameCredential || !options.exclusive) ? previous.credential : newCredential();
    if (previous) this.#byCredential.delete(hash(previous.credential));
    this.#byCredential.set(hash(credential), node.id);
    const entry: Entry = {
      credential,
      id: node.id,
      endpoint: node.endpoint,
      capabilities: structuredClone(node.capabilities),
      pipeline: node.pipeline == null ? node.pipeline : structuredClone(node.pipeline),
      currentLoad: checkLoad(node.currentLoad ?? 0),
      lastHeartbeatMs: this.#now(),
      draining: previous?.draining ?? false,
      reportedOffline: false,
    };
    this.#entries.set(node.id, entry);
    this.#emit({ type: 'registered', workerId: node.id });
    return this.#view(entry);
  }

  heartbeat(workerId: string, currentLoad: number): WorkerNode | undefined {
    const entry = this.#entries.get(workerId);
    if (!entry) return undefined;
    entry.currentLoad = checkLoad(currentLoad);
    entry.lastHeartbeatMs = this.#now();
    entry.reportedOffline = false;
    this.#emit({ type: 'heartbeat', workerId });
    return this.#view(entry);
  }

  get(workerId: string): WorkerNode | undefined {
    const entry = this.#entries.get(workerId);
    return entry && this.#view(entry);
  }

  list(): WorkerNode[] {
    const now = this.#now();
    return [...this.#entries.values()].map((entry) => this.#view(entry, now));
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
    this.#emit({ type: 'unregistered', workerId });
    return true;
  }

  drain(workerId: string): boolean {
    const entry = this.#entries.get(workerId);
    if (!entry) return false;
    entry.draining = true;
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

  #isOffline(entry: Entry, now: number): boolean {
    return now - entry.lastHeartbeatMs > this.#timeoutMs;
  }

  #status(entry: Entry, now: number): WorkerStatus {
    if (this.#isOffline(entry, now)) return 'Offline';
    if (entry.draining) return 'Draining';
    if (entry.currentLoad >= entry.capabilities.maxParallelModules) return 'Busy';
    return 'Available';
  }

  /** A copy of the entry as the contract's `WorkerNode`: callers cannot change the registry through it. */
  #view(entry: Entry, now: number = this.#now()): WorkerNode {
    const node: WorkerNode = {
      id: entry.id,
      endpoint: entry.endpoint,
      capabilities: structuredClone(entry.capabilities),
      lastHeartbeat: new Date(entry.lastHeartbeatMs).toISOString(),
      currentLoad: entry.currentLoad,
      status: this.#status(entry, now),
    };
    if (entry.pipeline !== undefined) node.pipeline = structuredClone(entry.pipeline);
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

/** Credentials are looked up by their SHA-256, never compared as plain strings. */
function hash(credential: string): string {
  return createHash('sha256').update(credential).digest('base64url');
}

function checkLoad(currentLoad: number): number {
  if (!Number.isInteger(currentLoad) || currentLoad < 0) {
    throw new RangeError(`currentLoad must be a non-negative integer, got ${String(currentLoad)}`);
  }
  return currentLoad;
}
