import { availableParallelism, hostname } from 'node:os';
import { createOrchestratorClient } from '@mpd/client';
import { DEFAULT_MODULE_TIMEOUT_MS, type WorkerNodeRegistration } from '@mpd/contract';
import { closeGracefully, createHttpOrHttpsServer, listen } from '@mpd/server-kit';
import pino from 'pino';
import { OrchestratorLink, type LinkState } from './agent/orchestrator-link.js';
import { createApp } from './app.js';
import { defaultWorkerId, detectTools, osName } from './capabilities.js';
import { WorkerError } from './errors.js';
import { ModuleExecutor } from './executor/module-executor.js';
import { workerStartupWarnings } from './startup-warnings.js';
import type { WorkerOptions } from './worker-options.js';

/** A started worker. */
export interface RunningWorker {
  readonly id: string;
  /** The URL the server listens on (loopback when it listens on every address); `https://` with `tls`. */
  readonly url: string;
  /** The URL advertised to the orchestrator. */
  readonly endpoint: string;
  /** The link to the orchestrator, if one is configured. */
  readonly link:
    | {
        readonly state: LinkState;
        /** The credential from the last registration (see `OrchestratorLink.credential`). */
        readonly credential: string | undefined;
        registered(): Promise<void>;
      }
    | undefined;
  /** Modules running now. */
  readonly load: number;
  readonly state: WorkerState;
  /** Resolves once the worker stopped (after {@link RunningWorker.drain} or {@link RunningWorker.close}). */
  readonly stopped: Promise<void>;
  /**
   * Drains: takes no new modules, tells the orchestrator, lets every running module finish,
   * then unregisters and closes the server. Also started by a heartbeat answer with
   * `shouldDrain: true` (an operator's `POST /api/workers/{id}/drain`).
   */
  drain(): Promise<void>;
  /**
   * Stops: takes no new modules, lets running modules finish for `graceMs`, cancels the
   * rest, unregisters, closes the server.
   * @param graceMs @default options.shutdownGraceMs (30 s)
   */
  close(graceMs?: number): Promise<void>;
}

/** A worker's lifecycle. */
export type WorkerState =
  /** Takes modules. */
  | 'running'
  /** Takes no new modules; finishes the running ones, then stops. */
  | 'draining'
  /** Unregistering and closing. */
  | 'stopping'
  | 'stopped';

/**
 * Starts a worker: its HTTP server (HTTPS with `tls`), and its registration with the
 * orchestrator. On a non-loopback address it warns (logger `warn`) about plain HTTP and about
 * serving without any token.
 */
export async function startWorker(options: WorkerOptions = {}): Promise<RunningWorker> {
  const logger = options.logger ?? pino({ level: 'info' }, pino.destination(2));
  const id = options.id ?? defaultWorkerId();
  const host = options.host ?? '0.0.0.0';
  const slots = options.slots ?? availableParallelism();
  const executor = new ModuleExecutor({
    workerId: id,
    pipeline: options.pipeline,
    slots,
    defaultTimeoutMs: options.defaultTimeoutMs ?? DEFAULT_MODULE_TIMEOUT_MS,
    workingDirectory: options.workingDirectory ?? process.cwd(),
    completedRetentionMs: 10 * 60_000,
    logger: logger.child({ workerId: id }),
  });
  // The link is made below; its credential is read per request.
  let linkCredential: () => string | undefined = () => undefined;
  const app = createApp({
    executor,
    logger,
    acceptedTokens: () => [options.token, linkCredential()].filter((token): token is string => token !== undefined),
    ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}),
    validateResponses: options.validateResponses ?? false,
  });
  const requestedPort = options.port ?? 9000;
  let server: ReturnType<typeof createHttpOrHttpsServer>;
  try {
    server = createHttpOrHttpsServer(app, options.tls);
  } catch (cause) {
    throw new WorkerError(
      'InvalidSetting',
      `Invalid setting tls: cannot use the certificate, key or client CA: ${(cause as Error).message}`,
      { cause },
    );
  }
  let port: number;
  try {
    port = await listen(server, requestedPort, host);
  } catch (cause) {
    throw new WorkerError('ListenFailed', `Cannot listen on ${host}:${requestedPort}: ${(cause as Error).message}`, {
      cause,
    });
  }
  // Long-running executions answer late: let Node keep those requests open.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  const wildcard = host === '0.0.0.0' || host === '::';
  const scheme = options.tls ? 'https' : 'http';
  const url = `${scheme}://${wildcard ? '127.0.0.1' : formatHost(host)}:${port}`;
  const endpoint = options.endpoint ?? `${scheme}://${wildcard ? hostname() : formatHost(host)}:${port}`;
  for (const warning of workerStartupWarnings({
    host,
    tls: options.tls !== undefined,
    token: options.joinToken !== undefined || options.token !== undefined,
  })) {
    logger.warn({ host }, warning);
  }

  const tools = options.tools ?? detectTools();
  const node = (): WorkerNodeRegistration => ({
    id,
    endpoint,
    capabilities: {
      os: options.os ?? osName(),
      installedTools: tools,
      maxParallelModules: slots,
      tags: options.tags ?? [],
    },
    pipeline: options.pipeline
      ? {
          name: options.pipeline.name,
          fingerprint: options.pipeline.fingerprint,
          modules: [...options.pipeline.modules.keys()],
        }
      : null,
  });

  const client = options.orchestratorUrl
    ? createOrchestratorClient({
        baseUrl: options.orchestratorUrl,
        ...(options.orchestratorTls ? { tls: options.orchestratorTls } : {}),
      })
    : undefined;
  let drain: () => Promise<void> = () => Promise.resolve();
  const link = client
    ? new OrchestratorLink({
        client,
        node,
        currentLoad: () => executor.load,
        logger: logger.child({ workerId: id, component: 'link' }),
        onDrainRequested: () => void drain(),
        joinToken: options.joinToken,
        credentialFile: options.credentialFile,
        ...(options.initialBackoffMs !== undefined ? { initialBackoffMs: options.initialBackoffMs } : {}),
        ...(options.maxBackoffMs !== undefined ? { maxBackoffMs: options.maxBackoffMs } : {}),
      })
    : undefined;
  linkCredential = () => link?.credential;
  link?.start();

  let state: WorkerState = 'running';
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));

  /** Unregisters and closes the server (once nothing runs, or after cancelling what still does). */
  let shuttingDown: Promise<void> | undefined;
  const shutDown = (graceMs: number): Promise<void> =>
    (shuttingDown ??= (async () => {
      state = 'stopping';
      executor.drain();
      if (executor.load > 0) await link?.announceDrain();
      const idle = executor.idle();
      const timer = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
      if ((await Promise.race([idle.then(() => 'idle'), timer])) !== 'idle') {
        logger.warn({ running: executor.load }, 'shutdown grace period over; cancelling running modules');
        executor.cancelAll('worker shutting down');
        await Promise.race([idle, new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
      }
      await link?.stop();
      await client?.close();
      await closeGracefully(server);
      state = 'stopped';
      resolveStopped();
    })());

  let draining: Promise<void> | undefined;
  drain = () =>
    (draining ??= (async () => {
      if (state !== 'running') return;
      state = 'draining';
      logger.info({ running: executor.load }, 'draining: finishing running modules, taking no new ones');
      executor.drain();
      await link?.announceDrain();
      await executor.idle();
      await shutDown(0);
    })());

  return {
    id,
    url,
    endpoint,
    link,
    get load() {
      return executor.load;
    },
    get state() {
      return state;
    },
    stopped,
    drain: () => drain(),
    close: (graceMs = options.shutdownGraceMs ?? 30_000) => shutDown(graceMs),
  };
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
