import type { AnyModule } from '@mpd/pipeline';

/**
 * Cluster-wide concurrency rules: a global maximum, `notInParallel` (alone, or per constraint
 * key) and keyed `parallelLimit`s, checked against the modules running anywhere. The runner
 * tells it when a module starts and ends, so that a check costs as much as the module's own
 * keys, however many modules run.
 */
export class ConcurrencyRules {
  #running = 0;
  /** Running modules with `notInParallel: 'all'`. */
  #alone = 0;
  /** notInParallel key → the running modules holding it, in the order they started. */
  readonly #holders = new Map<string, AnyModule[]>();
  /** parallelLimit key → how many running modules have it. */
  readonly #limited = new Map<string, number>();

  constructor(private readonly maxParallelism: number | undefined) {}

  /** How many modules run now. */
  get running(): number {
    return this.#running;
  }

  /** `module` started running somewhere. */
  started(module: AnyModule): void {
    this.#running++;
    if (module.notInParallel === 'all') this.#alone++;
    else {
      for (const key of distinctKeys(module.notInParallel)) {
        const holders = this.#holders.get(key);
        if (holders) holders.push(module);
        else this.#holders.set(key, [module]);
      }
    }
    const limit = module.parallelLimit;
    if (limit) this.#limited.set(limit.key, (this.#limited.get(limit.key) ?? 0) + 1);
  }

  /** `module` (counted by {@link ConcurrencyRules.started}) stopped running. */
  ended(module: AnyModule): void {
    this.#running--;
    if (module.notInParallel === 'all') this.#alone--;
    else {
      for (const key of distinctKeys(module.notInParallel)) {
        const holders = this.#holders.get(key);
        const index = holders?.indexOf(module) ?? -1;
        if (index >= 0) holders!.splice(index, 1);
        if (holders?.length === 0) this.#holders.delete(key);
      }
    }
    const limit = module.parallelLimit;
    if (limit) {
      const count = (this.#limited.get(limit.key) ?? 0) - 1;
      if (count > 0) this.#limited.set(limit.key, count);
      else this.#limited.delete(limit.key);
    }
  }

  /** Why `module` cannot start next to the running modules, or undefined when it can. */
  blocker(module: AnyModule): string | undefined {
    if (this.maxParallelism !== undefined && this.#running >= this.maxParallelism) {
      return `max parallelism ${this.maxParallelism} reached`;
    }
    if (this.#alone > 0) return 'a module that runs alone is running';
    if (module.notInParallel === 'all' && this.#running > 0) return 'it runs alone';
    if (module.notInParallel !== 'all') {
      for (const key of module.notInParallel) {
        const holder = this.#holders.get(key)?.[0];
        if (holder) return `'${holder.name}' holds the notInParallel key '${key}'`;
      }
    }
    const limit = module.parallelLimit;
    if (limit && (this.#limited.get(limit.key) ?? 0) >= limit.limit) {
      return `parallelLimit '${limit.key}' of ${limit.limit} reached`;
    }
    return undefined;
  }
}

/**
 * `keys` without repeats, in order. Most modules have no key or one (issue 14): those get
 * `keys` itself, no Set (110 -> 6 ns a start or end, `bench/own-code.ts`).
 */
export function distinctKeys(keys: readonly string[]): Iterable<string> {
  return keys.length <= 1 ? keys : new Set(keys);
}
