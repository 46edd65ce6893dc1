import type { PoolLoad } from './worker-pool.js';

interface Load {
  /** Attempts running on the worker now. */
  running: number;
  /** Attempts given to the worker so far. */
  given: number;
  /** Until when (epoch ms) the worker gets no work, after it refused some. */
  coolingUntil: number;
}

/** What a run gave each worker: the {@link PoolLoad} its `WorkerPool` orders workers by. */
export class WorkerLoads implements PoolLoad {
  readonly #loads = new Map<string, Load>();

  running(workerId: string): number {
    return this.#loads.get(workerId)?.running ?? 0;
  }

  given(workerId: string): number {
    return this.#loads.get(workerId)?.given ?? 0;
  }

  cooling(workerId: string, now: number): boolean {
    return (this.#loads.get(workerId)?.coolingUntil ?? 0) > now;
  }

  /** An attempt was given to the worker. */
  started(workerId: string): void {
    const load = this.#of(workerId);
    load.running++;
    load.given++;
  }

  /** An attempt on the worker ended (answered, failed or lost). */
  ended(workerId: string): void {
    this.#of(workerId).running--;
  }

  /** The worker refused work: it gets none until `untilMs` (epoch ms). */
  coolDown(workerId: string, untilMs: number): void {
    this.#of(workerId).coolingUntil = untilMs;
  }

  #of(workerId: string): Load {
    let load = this.#loads.get(workerId);
    if (!load) this.#loads.set(workerId, (load = { running: 0, given: 0, coolingUntil: 0 }));
    return load;
  }
}
