import { readFileSync } from 'node:fs';
import { bearerHeader, type OrchestratorClient, MpdClientError } from '@mpd/client';
import type { WorkerNodeRegistration } from '@mpd/contract';
import { longSleep } from '@mpd/contract/timers';
import { backoffDelay, writeStateFile } from '@mpd/server-kit';
import type { Logger } from 'pino';

/** Where the link to the orchestrator stands (Temporal-style explicit lifecycle). */
export type LinkState =
  | { status: 'idle' }
  | { status: 'registering'; attempt: number; lastError?: string }
  | { status: 'registered'; heartbeatIntervalMs: number; consecutiveFailures: number; lastError?: string }
  | { status: 'stopping' }
  | { status: 'stopped' };

export interface OrchestratorLinkOptions {
  client: OrchestratorClient;
  /** The worker's id (the one its registrations carry). */
  workerId: string;
  /** The load reported in each heartbeat. */
  currentLoad: () => number;
  /**
   * The executions running now, reported in each heartbeat (`executions`): the orchestrator
   * asks again for the outcome of one it still waits for that is no longer listed.
   * @default none reported
   */
  executions?: () => readonly string[];
  logger: Logger;
  /** The cluster join token to register with (bearer token). */
  joinToken?: string | undefined;
  /**
   * Where the worker keeps its credential between runs (written after each registration,
   * readable by its owner only; read at start): see `WorkerOptions.credentialFile`.
   */
  credentialFile?: string | undefined;
  /** First retry delay while the orchestrator cannot be reached (ms); doubles up to `maxBackoffMs` (see `WorkerOptions`). */
  initialBackoffMs: number;
  /** Longest retry delay (ms). */
  maxBackoffMs: number;
}

/** What {@link OrchestratorLink.start} takes: what exists only once the worker serves. */
export interface LinkStart {
  /** The node to register (its endpoint names the port the server got); called before every registration so it is current. */
  node: () => WorkerNodeRegistration;
  /** Called when a heartbeat answer says `shouldDrain: true`. */
  onDrainRequested?: () => void;
}

/**
 * Keeps a worker registered with the orchestrator: registers (retrying with backoff while the
 * orchestrator is down), sends heartbeats at the interval the orchestrator returned, registers
 * again when a heartbeat answers 404 (the orchestrator restarted or declared it lost), and
 * unregisters on {@link OrchestratorLink.stop}.
 */
export class OrchestratorLink {
  private current: LinkState = { status: 'idle' };
  private readonly stopController = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly registeredWaiters = new Set<() => void>();
  /** The credential from the last registration: sent on heartbeats, unregister, drain. */
  private credentialValue: string | undefined;

  constructor(private readonly options: OrchestratorLinkOptions) {}

  get state(): LinkState {
    return this.current;
  }

  /**
   * The credential the orchestrator issued at the last registration: the worker sends it on
   * its own calls, and accepts execute and cancel calls only with it.
   */
  get credential(): string | undefined {
    return this.credentialValue;
  }

  /** Starts registering, then heartbeats, in the background (once; later calls do nothing). */
  start(start: LinkStart): void {
    if (this.loop) return;
    this.credentialValue = this.readCredentialFile();
    this.loop = this.run(start).catch((error: unknown) => {
      if (!this.stopController.signal.aborted)
        this.options.logger.error({ err: error }, 'orchestrator link stopped unexpectedly');
    });
  }

  /** Resolves once the worker is registered (at once if it is). */
  registered(): Promise<void> {
    if (this.current.status === 'registered') return Promise.resolve();
    return new Promise((resolve) => this.registeredWaiters.add(resolve));
  }

  /**
   * Tells the orchestrator this worker is draining (so it sends no new modules and lists it as
   * `Draining`); best effort: a worker that cannot reach it answers new modules 503 anyway.
   */
  async announceDrain(): Promise<void> {
    try {
      await this.options.client.workers.drain({
        params: { workerId: this.options.workerId },
        fetchOptions: { signal: AbortSignal.timeout(5_000) },
        extraHeaders: bearerHeader(this.credentialValue),
      });
    } catch (error) {
      this.options.logger.warn({ err: describe(error) }, 'could not tell the orchestrator about the drain');
    }
  }

  /** Stops heartbeats and unregisters (best effort: a down orchestrator will expire the worker). */
  async stop(): Promise<void> {
    if (this.current.status === 'stopped' || this.current.status === 'stopping') return;
    const wasRegistered = this.current.status === 'registered';
    this.current = { status: 'stopping' };
    this.stopController.abort();
    await this.loop;
    if (wasRegistered) {
      try {
        await this.options.client.workers.unregister({
          params: { workerId: this.options.workerId },
          fetchOptions: { signal: AbortSignal.timeout(5_000) },
          extraHeaders: bearerHeader(this.credentialValue),
        });
        this.options.logger.info('unregistered from the orchestrator');
      } catch (error) {
        this.options.logger.warn(
          { err: describe(error) },
          'could not unregister; the orchestrator will expire this worker',
        );
      }
    }
    this.current = { status: 'stopped' };
  }

  /** The credential a previous run of this worker kept, if any (a missing file is the first run). */
  private readCredentialFile(): string | undefined {
    const file = this.options.credentialFile;
    if (file === undefined) return undefined;
    try {
      const credential = readFileSync(file, 'utf8').trim();
      return credential === '' ? undefined : credential;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.options.logger.warn(
          { err: describe(error), file },
          'could not read the credential file; registering without it',
        );
      }
      return undefined;
    }
  }

  /** Keeps the credential for the next run: whole or not at all, readable by this user only. */
  private async writeCredentialFile(credential: string | undefined): Promise<void> {
    const file = this.options.credentialFile;
    if (file === undefined || credential === undefined) return;
    try {
      await writeStateFile(file, `${credential}\n`, { private: true });
    } catch (error) {
      // The worker works on; only a restart after a crash waits for the old registration to expire.
      this.options.logger.warn({ err: describe(error), file }, 'could not write the credential file');
    }
  }

  private async run({ node, onDrainRequested }: LinkStart): Promise<void> {
    const signal = this.stopController.signal;
    while (!signal.aborted) {
      const intervalMs = await this.register(node, signal);
      if (intervalMs === undefined) return;
      await this.heartbeatUntilLost(intervalMs, signal, onDrainRequested);
    }
  }

  /** Registers, retrying with backoff; undefined when stopped first. */
  private async register(node: LinkStart['node'], signal: AbortSignal): Promise<number | undefined> {
    const { client, logger } = this.options;
    for (let attempt = 0; !signal.aborted; attempt++) {
      this.current = { status: 'registering', attempt, ...(this.lastError ? { lastError: this.lastError } : {}) };
      try {
        const response = await client.workers.register({
          body: {
            workerNode: { ...node(), currentLoad: this.options.currentLoad() },
            timestamp: new Date().toISOString(),
            ...(this.credentialValue ? { credential: this.credentialValue } : {}),
          },
          fetchOptions: { signal },
          extraHeaders: bearerHeader(this.options.joinToken),
        });
        if (response.status === 200) {
          const heartbeatIntervalMs = response.body.heartbeatIntervalSeconds * 1000;
          const previous = this.credentialValue;
          // Set first: the orchestrator may send a module with it as soon as it answered.
          this.credentialValue = response.body.credential;
          if (this.credentialValue !== previous) await this.writeCredentialFile(this.credentialValue);
          this.lastError = undefined;
          this.current = { status: 'registered', heartbeatIntervalMs, consecutiveFailures: 0 };
          logger.info({ workerId: response.body.workerId, heartbeatIntervalMs }, 'registered with the orchestrator');
          for (const resolve of this.registeredWaiters) resolve();
          this.registeredWaiters.clear();
          return heartbeatIntervalMs;
        }
        this.lastError = `register answered ${response.status}: ${JSON.stringify(response.body)}`;
      } catch (error) {
        if (signal.aborted) return undefined;
        this.lastError = describe(error);
      }
      const delay = this.delay(attempt);
      logger.warn({ attempt, retryInMs: delay, error: this.lastError }, 'registration failed; retrying');
      if (!(await pause(delay, signal))) return undefined;
    }
    return undefined;
  }

  /** Sends heartbeats until the orchestrator no longer knows this worker (404) or the link stops. */
  private async heartbeatUntilLost(
    intervalMs: number,
    signal: AbortSignal,
    onDrainRequested: LinkStart['onDrainRequested'],
  ): Promise<void> {
    const { client, logger } = this.options;
    let failures = 0;
    let wait = intervalMs;
    while (await pause(wait, signal)) {
      try {
        const response = await client.workers.heartbeat({
          body: {
            workerId: this.options.workerId,
            currentLoad: this.options.currentLoad(),
            timestamp: new Date().toISOString(),
            ...(this.options.executions ? { executions: [...this.options.executions()] } : {}),
          },
          fetchOptions: { signal },
          extraHeaders: bearerHeader(this.credentialValue),
        });
        if (response.status === 404 || response.status === 401 || response.status === 403) {
          logger.warn(
            { status: response.status },
            'the orchestrator does not know this worker or its credential (restarted, or expired it); registering again',
          );
          return;
        }
        if (response.status === 200) {
          if (failures > 0) logger.info({ failures }, 'heartbeats reach the orchestrator again');
          failures = 0;
          wait = intervalMs;
          this.current = { status: 'registered', heartbeatIntervalMs: intervalMs, consecutiveFailures: 0 };
          if (response.body.shouldDrain) onDrainRequested?.();
          continue;
        }
        this.lastError = `heartbeat answered ${response.status}`;
      } catch (error) {
        if (signal.aborted) return;
        this.lastError = describe(error);
      }
      wait = Math.min(intervalMs, this.delay(failures));
      failures++;
      this.current = {
        status: 'registered',
        heartbeatIntervalMs: intervalMs,
        consecutiveFailures: failures,
        lastError: this.lastError!,
      };
      logger.warn({ failures, retryInMs: wait, error: this.lastError }, 'heartbeat failed; retrying');
    }
  }

  private lastError: string | undefined;

  private delay(attempt: number): number {
    return backoffDelay(attempt, this.options.initialBackoffMs, this.options.maxBackoffMs);
  }
}

/**
 * Waits `ms`; false when `signal` aborted first. Any length: the heartbeat interval comes from
 * the orchestrator's answer and the backoff from the options.
 */
function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  return longSleep(ms, signal);
}

function describe(error: unknown): string {
  if (error instanceof MpdClientError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}
