import type { WorkerClient } from '@mpd/client';
import type { WorkerClientTarget } from './run-options.js';

/**
 * The run's clients of its workers: one per endpoint and credential (a worker that registers
 * again gets a new credential, and calls with the old one would be refused), made on first use.
 */
export class WorkerClients {
  readonly #clients = new Map<string, WorkerClient>();

  constructor(private readonly create: (target: WorkerClientTarget) => WorkerClient) {}

  /** The client of the worker at `endpoint`, sending `credential` (the worker's, from the registry). */
  for(endpoint: string, credential: string | undefined): WorkerClient {
    const key = `${endpoint} ${credential ?? ''}`;
    let client = this.#clients.get(key);
    if (!client) {
      client = this.create({ endpoint, token: credential });
      this.#clients.set(key, client);
    }
    return client;
  }

  /** Closes every client's connections (failures to close are ignored). */
  async closeAll(): Promise<void> {
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    await Promise.allSettled(clients.map((client) => client.close()));
  }
}
