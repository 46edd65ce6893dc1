import type { AnyModule } from '@mpd/pipeline';
import type { ModuleState } from './module-state.js';

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
  /** The queue, sorted by `goesBefore`. */
  readonly #queue: ModuleState[] = [];
  /** Modules made ready while the queue is being walked: queued when the walk ends. */
  readonly #later: ModuleState[] = [];
  /** How many queued modules have each `requiresKey`, with their requirements. */
  readonly #keys = new Map<string, { count: number; requires: AnyModule['requires'] }>();
  /** Ready modules that no live worker could run when last looked at, since when (epoch ms). */
  readonly #unplaceableSince = new Map<ModuleState, number>();
  #walking = false;

  /** How many modules are queued (not counting those deferred by a walk). */
  get length(): number {
    return this.#queue.length;
  }

  /** The module at `index` of the queue, or undefined past its end. */
  at(index: number): ModuleState | undefined {
    return this.#queue[index];
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
    const position = this.#position(state);
    if (this.#queue[position] !== state) return;
    this.#queue.splice(position, 1);
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
    this.#queue.splice(this.#position(state), 0, state);
    const key = this.#keys.get(state.requiresKey);
    if (key) key.count++;
    else this.#keys.set(state.requiresKey, { count: 1, requires: state.definition.requires });
  }

  /** Where `state` is, or goes, in the queue: the first module that does not go before it (binary search). */
  #position(state: ModuleState): number {
    const queue = this.#queue;
    let low = 0;
    let high = queue.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (goesBefore(queue[middle]!, state)) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
