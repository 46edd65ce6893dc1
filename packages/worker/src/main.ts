#!/usr/bin/env -S node --import tsx
/** `mpd-worker` / `pnpm worker`: start a worker from flags and MPD_* environment variables. */
import { loadPipelineFile } from '@mpd/pipeline';
import pino from 'pino';
import { parseWorkerConfig, workerCommand } from './config.js';
import { startWorker } from './server.js';

async function main(): Promise<void> {
  const command = workerCommand();
  command.parse();
  let config;
  try {
    config = parseWorkerConfig(command.opts());
  } catch (error) {
    process.stderr.write(`mpd-worker: ${(error as Error).message}\n`);
    process.exit(2);
  }
  const logger = pino({ level: config.logLevel, base: { service: 'mpd-worker' } }, pino.destination(2));
  let pipeline;
  if (config.pipeline) {
    try {
      pipeline = await loadPipelineFile(config.pipeline, process.env.INIT_CWD ?? process.cwd());
    } catch (error) {
      process.stderr.write(`mpd-worker: ${(error as Error).message}\n`);
      process.exit(2);
    }
  }
  if (!config.orchestrator) logger.warn('no --orchestrator given: serving the worker API without registering anywhere');

  const worker = await startWorker({
    port: config.port,
    host: config.host,
    logger,
    ...(config.id ? { id: config.id } : {}),
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    ...(config.orchestrator ? { orchestratorUrl: config.orchestrator } : {}),
    ...(config.tags ? { tags: config.tags } : {}),
    ...(config.tools ? { tools: config.tools } : {}),
    ...(config.maxParallel ? { maxParallelModules: config.maxParallel } : {}),
    ...(pipeline ? { pipeline } : {}),
  });
  process.stdout.write(`mpd worker ${worker.id} listening on ${worker.url}\n`);

  let signals = 0;
  const shutdown = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    logger.info({ signal }, 'shutting down: finishing running modules, unregistering');
    worker.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

void main();
