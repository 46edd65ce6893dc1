import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { ArtifactClient, createOrchestratorClient } from '@mpd/client';
import { WorkerBlobs } from './artifacts/worker-blobs.js';
import type { WorkerNodeRegistration } from '@mpd/contract';
import { closeGracefully, createHttpOrHttpsServer, listen, parseSize } from '@mpd/server-kit';
import type { Application } from 'express';
import { createApp } from './app.js';
import { callGateOf } from './http/auth.js';
import { WorkerConfigError, WorkerError } from './errors.js';
import { ModuleExecutor } from './executor/module-executor.js';
import { OrchestratorLink, type LinkState } from './registration/orchestrator-link.js';
import { OutputShipper } from './registration/output-shipper.js';
import { workerStartupWarnings } from './startup-warnings.js';
import { type WorkerExit, WorkerLifecycle, type WorkerState } from './worker-lifecycle.js';
import { resolveWorkerOptions, type ResolvedWorkerOptions, type WorkerOptions } from './worker-options.js';

/** A started worker. */
export interface RunningWorker {
  readonly id: string;
  /**
   * This start's incarnation: a random id minted when the worker starts, sent with every
   * registration and heartbeat. A later start under the same id has another one, and replaces
   * this one at the orchestrator.
   */
  readonly incarnation: string;
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
        /** Whether the worker is fenced: no heartbeat acknowledged by its lease's renew deadline (see `fenceLeadMs`). */
        readonly fenced: boolean;
        registered(): Promise<void>;
      }
    | undefined;
  /** Modules running now. */
  readonly load: number;
  readonly state: WorkerState;
  /**
   * Resolves once the worker stopped, with why: after {@link RunningWorker.drain} or
   * {@link RunningWorker.close} (`stopped`), or on its own when the orchestrator refused its
   * registration as invalid (`registration-refused`) or another process registered under its id
   * (`replaced`: it cancelled its modules first).
   */
  readonly stopped: Promise<WorkerExit>;
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

/**
 * Starts a worker: its HTTP server (HTTPS with `tls`), its module hosts (with `isolation:
 * 'process'`), and its registration with the orchestrator, once the hosts are up (it resolves
 * then). On a non-loopback address it warns (logger `warn`) about plain HTTP and about serving
 * without any token.
 */
export async function startWorker(options: WorkerOptions = {}): Promise<RunningWorker> {
  const resolved = resolveWorkerOptions(options);
  const { id, host, logger, pipeline, slots } = resolved;
  const bodyLimitBytes = checkSizes(resolved);
  const incarnation = randomUUID();
  // Set once the link exists (the shipper and the artifact client read its credential at every call).
  let linkRef: OrchestratorLink | undefined;
  // `ctx.artifacts` go through the worker (the hosts ask it over the host channel, fd 3): the credential stays in
  // the worker's process, out of module code's reach, and all hosts share one cache.
  const artifactClient = resolved.orchestratorUrl
    ? new ArtifactClient({
        baseUrl: resolved.orchestratorUrl,
        token: () => linkRef?.credential,
        ...(resolved.orchestratorTls ? { tls: resolved.orchestratorTls } : {}),
      })
    : undefined;
  const cacheDir = resolve(resolved.cacheDir);
  const blobs = artifactClient
    ? new WorkerBlobs(
        artifactClient,
        {
          dir: cacheDir,
          maxBytes: resolved.cacheMaxBytes,
          logger: logger.child({ workerId: id, component: 'artifacts' }),
        },
        { packStallMs: resolved.packStallMs },
      )
    : undefined;
  try {
    await blobs?.cache.open();
  } catch (cause) {
    await artifactClient?.close();
    throw new WorkerConfigError(
      'InvalidSetting',
      'cacheDir',
      `Invalid setting cacheDir: cannot use the cache directory ${cacheDir}: ${(cause as Error).message}`,
      { cause },
    );
  }
  const client = resolved.orchestratorUrl
    ? createOrchestratorClient({
        baseUrl: resolved.orchestratorUrl,
        ...(resolved.orchestratorTls ? { tls: resolved.orchestratorTls } : {}),
      })
    : undefined;
  const shipper = client
    ? new OutputShipper({
        client,
        workerId: id,
        credential: () => linkRef?.credential,
        logger: logger.child({ workerId: id, component: 'output' }),
        spillDir: join(resolved.workingDirectory, '.mpd', 'output-spill', id),
        bufferBytesPerExecution: resolved.outputBufferBytes,
        spillBytesPerExecution: resolved.outputSpillBytes,
        initialBackoffMs: resolved.initialBackoffMs,
        maxBackoffMs: resolved.maxBackoffMs,
      })
    : undefined;
  const executor = new ModuleExecutor({
    workerId: id,
    pipeline,
    slots,
    defaultTimeoutMs: resolved.defaultTimeoutMs,
    workingDirectory: resolved.workingDirectory,
    completedRetentionMs: resolved.completedRetentionMs,
    maxResultBytes: resolved.maxResultBytes,
    inlineResultBytes: resolved.inlineResultBytes,
    isolation: resolved.isolation,
    killGraceMs: resolved.killGraceMs,
    moduleHeapLimitMb: resolved.moduleHeapLimitMb,
    logger: logger.child({ workerId: id }),
    artifacts: blobs
      ? {
          transport: blobs,
          scratchDir: blobs.cache.scratchDir,
        }
      : undefined,
    output: shipper,
  });
  const link = client
    ? new OrchestratorLink({
        client,
        workerId: id,
        currentLoad: () => executor.load,
        executions: () => executor.executionIds(),
        finished: { ids: () => executor.finishedIds(), reported: (ids) => executor.finishedReported(ids) },
        logger: logger.child({ workerId: id, component: 'link' }),
        joinToken: resolved.joinToken,
        credentialFile: resolved.credentialFile,
        initialBackoffMs: resolved.initialBackoffMs,
        maxBackoffMs: resolved.maxBackoffMs,
        incarnation,
        killGraceMs: resolved.killGraceMs,
      })
    : undefined;
  linkRef = link;
  const app = createApp({
    executor,
    logger,
    // Read per request: the link's credential changes at each registration. Fails closed: see mayCall.
    callGate: callGateOf(resolved, link),
    bodyLimit: resolved.bodyLimit,
    validateResponses: resolved.validateResponses,
  });
  const { server, port } = await serve(app, resolved).catch(async (error: unknown) => {
    await Promise.all([client?.close(), artifactClient?.close(), executor.close('the worker could not start')]);
    throw error;
  });
  const wildcard = host === '0.0.0.0' || host === '::';
  const scheme = resolved.tls ? 'https' : 'http';
  const url = `${scheme}://${wildcard ? '127.0.0.1' : formatHost(host)}:${port}`;
  const endpoint = resolved.endpoint ?? `${scheme}://${wildcard ? hostname() : formatHost(host)}:${port}`;
  for (const warning of workerStartupWarnings({
    host,
    tls: resolved.tls !== undefined,
    token: resolved.joinToken !== undefined || resolved.token !== undefined,
    open: resolved.open,
    orchestrator: link !== undefined,
  })) {
    logger.warn({ host }, warning);
  }

  const node = (): WorkerNodeRegistration => ({
    id,
    endpoint,
    capabilities: {
      os: resolved.os,
      installedTools: resolved.tools,
      maxParallelModules: slots,
      tags: resolved.tags,
      bodyLimitBytes,
    },
    pipeline: pipeline
      ? { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: [...pipeline.modules.keys()] }
      : null,
  });
  const lifecycle = new WorkerLifecycle({
    executor,
    link,
    logger,
    close: async () => {
      // What the modules wrote last, before the clients go (at most the shipper's close wait).
      await shipper?.close();
      await Promise.all([client?.close(), artifactClient?.close(), blobs?.cache.close()]);
      await closeGracefully(server);
    },
  });
  // Registered once the module hosts are up, so that the first modules sent do not wait for them.
  await executor.ready();
  link?.start({
    node,
    onDrainRequested: () => void lifecycle.drain(),
    onCancelRequested: (executionId, reason) => executor.cancel(executionId, reason),
    onFenced: (reason) => lifecycle.fence(reason),
    onUnfenced: () => lifecycle.unfence(),
    onLeaseRenewed: (endsInMs) => executor.renewLease(endsInMs),
    onEnded: (end) => void lifecycle.end(end, resolved.shutdownGraceMs),
  });

  return {
    id,
    incarnation,
    url,
    endpoint,
    link,
    get load() {
      return executor.load;
    },
    get state() {
      return lifecycle.state;
    },
    stopped: lifecycle.stopped,
    drain: () => lifecycle.drain(),
    close: (graceMs = resolved.shutdownGraceMs) => lifecycle.shutDown(graceMs),
  };
}

/**
 * Checks the size options; returns the body limit in bytes (advertised to the orchestrator).
 * @throws WorkerConfigError (code `InvalidSetting`) naming `maxResultBytes`, `inlineResultBytes` or `bodyLimit`.
 */
function checkSizes({ maxResultBytes, inlineResultBytes, bodyLimit }: ResolvedWorkerOptions): number {
  for (const [setting, value] of [
    ['maxResultBytes', maxResultBytes],
    ['inlineResultBytes', inlineResultBytes],
  ] as const) {
    if (!(Number.isSafeInteger(value) && value > 0)) {
      throw new WorkerConfigError(
        'InvalidSetting',
        setting,
        `Invalid setting ${setting}: must be a whole number of bytes above 0, got ${String(value)}`,
      );
    }
  }
  try {
    return parseSize(bodyLimit);
  } catch (cause) {
    throw new WorkerConfigError(
      'InvalidSetting',
      'bodyLimit',
      `Invalid setting bodyLimit: must be a size in b, kb, mb or gb, such as 512kb, 1mb or 100mb, got ${JSON.stringify(bodyLimit)}`,
      { cause },
    );
  }
}

type Server = ReturnType<typeof createHttpOrHttpsServer>;

/**
 * The app's HTTP(S) server, listening on `resolved.host` and `resolved.port`.
 * @throws WorkerConfigError (code `InvalidSetting`, setting `tls`) for unusable TLS files, WorkerError (code
 *   `ListenFailed`) when it cannot listen.
 */
async function serve(app: Application, resolved: ResolvedWorkerOptions): Promise<{ server: Server; port: number }> {
  const { host, port: requestedPort } = resolved;
  let server: Server;
  try {
    server = createHttpOrHttpsServer(app, resolved.tls);
  } catch (cause) {
    throw new WorkerConfigError(
      'InvalidSetting',
      'tls',
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
  return { server, port };
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
