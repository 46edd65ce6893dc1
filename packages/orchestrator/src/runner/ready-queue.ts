import type { AnyModule } from '@mpd/pipeline';
import type { ModuleState } from './module-state.js';

/** Spent slots at the queue's front dropped at once, at the least (see `ReadyQueue.leave`). */
const COMPACT_AT = 64;

/**
 * Whether ready module `a` is considered before `b`: higher priority first, then the one
 * heading more remaining work (its duration hint plus its dependants'), then pipeline order.
 */
function goesBefore(a: ModuleState, b: ModuleState): boolean {
  if (a.rank !== b.rank) return a.rank > b.rank;
  if (a.height !== b.height) return a.height > b.height;
  return a.order < b.order;
}

/**
 * The modules in phase `ready`, in the order they are considered for dispatch (highest priority
 * first, then the most remaining work, then pipeline order), with what the scheduler asks of
 * them as a whole: how many wait per set of requirements, and which no live worker could run.
 */
export class ReadyQueue {
  /**
   * The queue, sorted by `goesBefore`, from index {@link ReadyQueue.#head} on: the slots before
   * it are spent (undefined). A module that leaves near the front (a dispatch takes the first
   * ones) moves the few before it one slot on and advances the head, where `splice` moved every
   * module after it: a wide run's whole pipeline waits here, so that was O(queue) per dispatch
   * (2.6 % of the orchestrator's main thread at 10,000 ready modules, round K's `perf`).
   */
  readonly #queue: (ModuleState | undefined)[] = [];
  /** Where the queue starts in {@link ReadyQueue.#queue}. */
  #head = 0;
  /** Modules made ready while the queue is being walked: queued when the walk ends. */
  readonly #later: ModuleState[] = [];
  /** How many queued modules have each `requiresKey`, with their requirements. */
  readonly #keys = new Map<string, { count: number; requires: AnyModule['requires'] }>();
  /** Ready modules that no live worker could run when last looked at, since when (epoch ms). */
  readonly #unplaceableSince = new Map<ModuleState, number>();
  #walking = false;

  /** How many modules are queued (not counting those deferred by a walk). */
  get length(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * The spent slots before the queue's head, a copy (for tests: {@link ReadyQueue.leave} keeps
   * them at most max(64, the queue's peak length), each undefined, so that a module that left is
   * not held). O(spent slots).
   * @internal
   */
  get spentSlots(): readonly (ModuleState | undefined)[] {
    return this.#queue.slice(0, this.#head);
  }

  /** The module at `index` of the queue, or undefined past its end. */
  at(index: number): ModuleState | undefined {
    return index < 0 ? undefined : this.#queue[this.#head + index];
  }

  /** Whether a {@link ReadyQueue.walk} is under way. */
  get walking(): boolean {
    return this.#walking;
  }

  /**
   * Runs `walk` over the queue: modules made ready meanwhile wait aside and are queued when it
   * returns, so that the queue only shrinks during the walk and its indexes stay meaningful.
   */
  walk(walk: () => void): void {
    this.#walking = true;
    try {
      walk();
    } finally {
      this.#walking = false;
      for (const state of this.#later.splice(0)) this.#insert(state);
    }
  }

  /** A module became ready: queued in its place (or, during a walk, once the walk is over). */
  enter(state: ModuleState): void {
    if (this.#walking) this.#later.push(state);
    else this.#insert(state);
  }

  /** A module stopped being ready (dispatched, or ended): out of the queue or the deferred list. */
  leave(state: ModuleState): void {
    this.#unplaceableSince.delete(state);
    const later = this.#later.indexOf(state);
    if (later >= 0) {
      this.#later.splice(later, 1);
      return;
    }
    const queue = this.#queue;
    const position = this.#position(state);
    if (queue[position] !== state) return;
    const head = this.#head;
    if (position - head < queue.length - position) {
      // Nearer the front: the modules before it move one slot on.
      queue.copyWithin(head + 1, head, position);
      queue[head] = undefined;
      this.#head = head + 1;
      // The spent slots are dropped once they are half the array: O(1) per leave, amortised.
      if (this.#head >= COMPACT_AT && this.#head * 2 >= queue.length) {
        queue.splice(0, this.#head);
        this.#head = 0;
      }
    } else {
      queue.splice(position, 1);
    }
    const key = this.#keys.get(state.requiresKey)!;
    if (--key.count === 0) this.#keys.delete(state.requiresKey);
  }

  /** The distinct requirements of the queued modules: `[requiresKey, requires]` each. */
  *requirements(): IterableIterator<[string, AnyModule['requires']]> {
    for (const [key, { requires }] of this.#keys) yield [key, requires];
  }

  /** How many queued modules have `requiresKey`. */
  countOf(requiresKey: string): number {
    return this.#keys.get(requiresKey)?.count ?? 0;
  }

  /**
   * No live worker can run `state` at `now`: returns since when that has been so (the first
   * time it was reported, until it is placeable again or leaves).
   */
  unplaceable(state: ModuleState, now: number): number {
    let since = this.#unplaceableSince.get(state);
    if (since === undefined) this.#unplaceableSince.set(state, (since = now));
    return since;
  }

  /** Some live worker can run `state` again. */
  placeable(state: ModuleState): void {
    this.#unplaceableSince.delete(state);
  }

  /** Whether some ready module had no live worker that could run it when last looked at. */
  get hasUnplaceable(): boolean {
    return this.#unplaceableSince.size > 0;
  }

  #insert(state: ModuleState): void {
    const position = this.#position(state);
    // A spent slot in front takes a module that goes first without moving the others.
    if (position === this.#head && position > 0) this.#queue[(this.#head = position - 1)] = state;
    else this.#queue.splice(position, 0, state);
    const key = this.#keys.get(state.requiresKey);
    if (key) key.count++;
    else this.#keys.set(state.requiresKey, { count: 1, requires: state.definition.requires });
  }

  /**
   * Where `state` is, or goes, in {@link ReadyQueue.#queue}: the index of the first queued module
   * that does not go before it (binary search from the head).
   */
  #position(state: ModuleState): number {
    const queue = this.#queue as ModuleState[];
    let low = this.#head;
    let high = queue.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (goesBefore(queue[middle]!, state)) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
