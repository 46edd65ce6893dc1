import { startOrchestrator, type RunningOrchestrator, type StartOrchestratorOptions } from '@mpd/orchestrator';
import { startWorker, type RunningWorker, type WorkerOptions } from '@mpd/worker';
import pino from 'pino';

export const silent = pino({ level: 'silent' });

/** Everything a test started, closed by {@link Cluster.close}. */
export class Cluster {
  readonly workers: RunningWorker[] = [];
  orchestrator!: RunningOrchestrator;

  async startOrchestrator(options: StartOrchestratorOptions = {}): Promise<RunningOrchestrator> {
    this.orchestrator = await startOrchestrator({
      port: 0,
      host: '127.0.0.1',
      heartbeatIntervalSeconds: 0.2,
      heartbeatTimeoutMs: 1_000,
      validateResponses: true,
      logger: silent,
      ...options,
    });
    return this.orchestrator;
  }

  async startWorker(options: WorkerOptions = {}): Promise<RunningWorker> {
    const worker = await startWorker({
      port: 0,
      host: '127.0.0.1',
      orchestratorUrl: this.orchestrator?.url,
      slots: 2,
      validateResponses: true,
      logger: silent,
      shutdownGraceMs: 200,
      initialBackoffMs: 50,
      maxBackoffMs: 200,
      tools: ['node'],
      ...options,
    });
    this.workers.push(worker);
    return worker;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.close()));
    await this.orchestrator?.close();
  }
}
