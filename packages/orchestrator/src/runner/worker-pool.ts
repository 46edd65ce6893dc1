import type { WorkerNode } from '@mpd/contract';
import type { AnyModule } from '@mpd/pipeline';
import type { NodeRegistry, NodeRegistryEvent } from '../registry/node-registry.js';
import { IndexedHeap } from './indexed-heap.js';
import { missingCapabilities } from './requirement-messages.js';

/** What the run knows about a worker's load. */
export interface PoolLoad {
  /** Attempts running on the worker now, in this run. */
  running(workerId: string): number;
  /** Attempts given to the worker so far in this run. */
  given(workerId: string): number;
  /** Whether the worker refused work (429/503) a moment ago and gets none until `now` passes its cool-down. */
  cooling(workerId: string, now: number): boolean;
}

/** What placement needs to know of a module (a `ModuleState` has it). */
export interface PlacedModule {
  /** Stands for its requirements: '' for none (see `requiresKeyOf`). */
  readonly requiresKey: string;
  /** Workers the module was lost on: avoided while others can take it. */
  readonly lostOn: ReadonlySet<string>;
}

interface Member {
  readonly node: WorkerNode;
  /** Its place in the registry's list: the last tie-break. */
  readonly order: number;
  /** Its index in the heap of workers with a free slot; -1 while it has none or is cooling down. */
  index: number;
  /** Its heap key, as of the last {@link WorkerPool.update}: running / slots, then attempts given. */
  ratio: number;
  given: number;
}

/**
 * The live workers a run can use (`Available` or `Busy`, same pipeline fingerprint, not
 * quarantined by the run), kept between dispatch rounds instead of read from the registry for
 * each: those with a free slot sit in a heap, least loaded first (running / slots, then fewest
 * attempts given in this run, then registry order), so choosing a worker costs O(log workers),
 * however many there are.
 * {@link WorkerPool.pick} chooses the worker for a module: among those that meet its
 * requirements, avoiding those it was lost on.
 *
 * The registry is read again after a registry event that concerns the pool (`changed`), on
 * `invalidate` and on the run's periodic tick. It is also asked about the chosen worker (`snapshotOf`) just before it is used, so no
 * module goes to a worker that went `Offline` or `Draining` since the last read (neither
 * raises an event at once).
 */
export class WorkerPool {
  readonly #members = new Map<string, Member>();
  #live: WorkerNode[] = [];
  readonly #heap = new IndexedHeap<Member>((a, b) => this.#before(a, b));
  /** Members left out of the heap while cooling down. */
  readonly #cooling = new Set<Member>();
  /** Per requirements key: the requirements, and the live workers that meet them, until the next read. */
  readonly #capable = new Map<string, { requires: AnyModule['requires']; workers: WorkerNode[] }>();
  #stale = true;
  /** Workers that became usable since the last read, added at the next {@link WorkerPool.sync} without a read. */
  readonly #joining = new Set<string>();
  /** The order a worker added without a read takes: after every one read. */
  #nextOrder = 0;

  /**
   * @param excluded workers the run does not dispatch to although they are live (quarantined);
   *   call {@link WorkerPool.invalidate} when its answer changes
   */
  constructor(
    private readonly registry: NodeRegistry,
    private readonly fingerprint: string,
    private readonly load: PoolLoad,
    private readonly excluded: (workerId: string) => boolean = () => false,
  ) {}

  /** The registry changed, or may have: read it again before the next placement. */
  invalidate(): void {
    this.#stale = true;
  }

  /**
   * The registry reported a change of `workerId` (a {@link NodeRegistryEvent}), and the pool
   * does work proportional to it, never a read of the whole registry per event (issue 11: that
   * is quadratic under a flood of registrations): a worker it can use but does not have joins at
   * the next {@link WorkerPool.sync}, after every worker read (the registry order it takes until
   * the next read); an event of a worker it neither has nor can use (Offline, another pipeline,
   * quarantined, gone), or a heartbeat of one it has, changes nothing. Any other event of a
   * worker it has (it went Offline, unregistered, registered again) makes it read the registry
   * again before the next placement.
   */
  changed(workerId: string, type: NodeRegistryEvent['type']): void {
    if (this.#members.has(workerId)) {
      if (type !== 'heartbeat') this.#stale = true;
      return;
    }
    const node = this.registry.snapshotOf(workerId);
    if (node !== undefined && this.#usable(node)) this.#joining.add(workerId);
  }

  /** Brings the pool up to date for a dispatch round at `now`. */
  sync(now: number): void {
    if (this.#stale) this.#read(now);
    else if (this.#joining.size > 0) this.#join(now);
    for (const member of this.#cooling) {
      if (!this.load.cooling(member.node.id, now)) {
        this.#cooling.delete(member);
        this.update(member.node.id, now);
      }
    }
  }

  /** The live workers, in registry order. */
  get live(): readonly WorkerNode[] {
    return this.#live;
  }

  /** Whether some live worker has a free slot and is not cooling down. */
  get hasFreeSlot(): boolean {
    return this.#heap.size > 0;
  }

  /** The live workers that meet `requires` (`key` stands for them: equal keys, equal requirements). */
  capable(key: string, requires: AnyModule['requires']): readonly WorkerNode[] {
    if (key === '') return this.#live;
    let capable = this.#capable.get(key);
    if (!capable) {
      capable = {
        requires,
        workers: this.#live.filter((worker) => missingCapabilities(worker, requires).length === 0),
      };
      this.#capable.set(key, capable);
    }
    return capable.workers;
  }

  /** The load of `workerId` changed (a dispatch, an answer, a refusal): its place in the heap follows. */
  update(workerId: string, now: number): void {
    const member = this.#members.get(workerId);
    if (!member) return;
    this.#rekey(member);
    const room = this.#hasRoom(member, now);
    if (!room && this.load.cooling(workerId, now)) this.#cooling.add(member);
    if (room && member.index < 0) this.#heap.push(member);
    else if (!room && member.index >= 0) this.#heap.remove(member);
    else if (room) this.#heap.update(member);
  }

  /**
   * The worker to run `module` on now, among its `capable` workers (from {@link WorkerPool.capable}): the
   * least loaded with a free slot (running / slots), ties going to the one given least work so
   * far, then to registry order. Workers the module was lost on are left out while another
   * capable worker is live, even a full one (the module then waits for it): they are chosen
   * only when no other can run the module. Undefined when no candidate has a free slot.
   */
  pick(module: PlacedModule, capable: readonly WorkerNode[], now: number): WorkerNode | undefined {
    // Every live worker is a candidate: the heap answers at once.
    if (module.lostOn.size === 0 && module.requiresKey === '') return this.pickAny(now);
    const fresh = module.lostOn.size === 0 ? capable : capable.filter((worker) => !module.lostOn.has(worker.id));
    return this.pickAmong(fresh.length > 0 ? fresh : capable, now);
  }

  /** The least-loaded live worker with a free slot, or undefined. */
  pickAny(now: number): WorkerNode | undefined {
    for (let best = this.#heap.peek(); best; best = this.#heap.peek()) {
      if (this.#stillLive(best)) return best.node;
      this.invalidate();
      this.sync(now);
    }
    return undefined;
  }

  /**
   * The least-loaded worker with a free slot among `candidates` (a scan: for modules with
   * requirements, or lost on some workers, whose candidates are not the whole pool).
   */
  pickAmong(candidates: readonly WorkerNode[], now: number): WorkerNode | undefined {
    for (;;) {
      let best: Member | undefined;
      for (const worker of candidates) {
        const member = this.#members.get(worker.id);
        if (!member || !this.#hasRoom(member, now)) continue;
        this.#rekey(member);
        if (!best || this.#before(member, best)) best = member;
      }
      if (!best || this.#stillLive(best)) return best?.node;
      this.invalidate();
      this.sync(now);
      // The candidates were read before: keep those that are still live.
      candidates = candidates.filter((worker) => this.#members.has(worker.id));
    }
  }

  #read(now: number): void {
    this.#stale = false;
    this.#joining.clear();
    this.#members.clear();
    this.#cooling.clear();
    this.#capable.clear();
    this.#heap.clear();
    // A new array: a read in the middle of a pick (`pickAny`, `pickAmong`) leaves the candidates
    // it walks as they were. Workers that join are appended in place, at the start of a round only.
    this.#live = [];
    const nodes = this.registry.snapshot();
    nodes.forEach((node, order) => {
      if (this.#usable(node)) this.#add(node, order, now);
    });
    this.#nextOrder = nodes.length;
  }

  /** Adds the workers that became usable since the last read (see {@link WorkerPool.changed}). */
  #join(now: number): void {
    for (const workerId of this.#joining) {
      const node = this.registry.snapshotOf(workerId);
      if (node === undefined || !this.#usable(node) || this.#members.has(workerId)) continue;
      this.#add(node, this.#nextOrder++, now);
      for (const capable of this.#capable.values()) {
        if (missingCapabilities(node, capable.requires).length === 0) capable.workers.push(node);
      }
    }
    this.#joining.clear();
  }

  #add(node: WorkerNode, order: number, now: number): void {
    const member: Member = { node, order, index: -1, ratio: 0, given: 0 };
    this.#rekey(member);
    this.#members.set(node.id, member);
    this.#live.push(node);
    if (this.#hasRoom(member, now)) this.#heap.push(member);
    else if (this.load.cooling(node.id, now)) this.#cooling.add(member);
  }

  #usable(node: WorkerNode): boolean {
    return (
      (node.status === 'Available' || node.status === 'Busy') &&
      node.pipeline?.fingerprint === this.fingerprint &&
      !this.excluded(node.id)
    );
  }

  /** Asks the registry whether the worker is still live (it tells cheaply: no copy). */
  #stillLive(member: Member): boolean {
    const current = this.registry.snapshotOf(member.node.id);
    return current !== undefined && this.#usable(current);
  }

  #hasRoom(member: Member, now: number): boolean {
    const id = member.node.id;
    return this.load.running(id) < member.node.capabilities.maxParallelModules && !this.load.cooling(id, now);
  }

  #rekey(member: Member): void {
    const id = member.node.id;
    member.ratio = this.load.running(id) / member.node.capabilities.maxParallelModules;
    member.given = this.load.given(id);
  }

  /** Whether `a` is chosen before `b`. */
  #before(a: Member, b: Member): boolean {
    if (a.ratio !== b.ratio) return a.ratio < b.ratio;
    if (a.given !== b.given) return a.given < b.given;
    return a.order < b.order;
  }
}
