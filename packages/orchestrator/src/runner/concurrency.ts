import type { AnyModule } from '@mpd/pipeline';

/**
 * Cluster-wide concurrency rules: a global maximum, `notInParallel` (alone, or per constraint
 * key) and keyed `parallelLimit`s, checked against the modules running anywhere.
 */
export class ConcurrencyRules {
  constructor(private readonly maxParallelism: number | undefined) {}

  /** Why `module` cannot start next to `running`, or undefined when it can. */
  blocker(module: AnyModule, running: readonly AnyModule[]): string | undefined {
    if (this.maxParallelism !== undefined && running.length >= this.maxParallelism) {
      return `max parallelism ${this.maxParallelism} reached`;
    }
    if (running.some((other) => other.notInParallel === 'all')) return 'a module that runs alone is running';
    if (module.notInParallel === 'all' && running.length > 0) return 'it runs alone';
    if (module.notInParallel !== 'all') {
      for (const key of module.notInParallel) {
        const holder = running.find((other) => other.notInParallel !== 'all' && other.notInParallel.includes(key));
        if (holder) return `'${holder.name}' holds the notInParallel key '${key}'`;
      }
    }
    const limit = module.parallelLimit;
    if (limit) {
      const holders = running.filter((other) => other.parallelLimit?.key === limit.key).length;
      if (holders >= limit.limit) return `parallelLimit '${limit.key}' of ${limit.limit} reached`;
    }
    return undefined;
  }
}
