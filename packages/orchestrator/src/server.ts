import { redactUrl } from '@mpd/contract/redact-url';
import { longInterval } from '@mpd/contract/timers';
import { closeGracefully, createHttpOrHttpsServer, listen, reachableHost, type ServerTls } from '@mpd/server-kit';
import type { Logger } from 'pino';
import { createApp, endpointPolicyOf } from './app.js';
import { type ArtifactStore, artifactStoreOf } from './artifacts/artifact-store.js';
import { OrchestratorConfigError, OrchestratorStartError } from './errors.js';
import { DEFAULT_START_OPTIONS, type OrchestratorOptions, resolveOrchestratorOptions } from './orchestrator-options.js';
import type { WorkerEndpointPolicy } from './http/endpoint-policy.js';
import { InMemoryNodeRegistry } from './registry/in-memory-node-registry.js';
import type { NodeRegistry } from './registry/node-registry.js';
import { ExecutionLogs } from './runner/execution-logs.js';
import { orchestratorStartupWarnings } from './startup-warnings.js';

/** Options of {@link startOrchestrator}. */
export type StartOrchestratorOptions = OrchestratorOptions & {
  /**
   * The port to listen on; 0 picks a free one (read it from the result's `url`/`port`).
   * @default 8080
   */
  port?: number;
  /**
   * The address to listen on; `0.0.0.0` accepts connections from other machines.
   * @default '0.0.0.0'
   */
  host?: string;
  /**
   * The registry to serve (its own bounds apply: `offlineRetentionMs`, `maxWorkers` and
   * `maxPipelines` are for the registry made when none is given).
   * @default a new InMemoryNodeRegistry with `heartbeatTimeoutMs`, `offlineRetentionMs`, `maxWorkers`, `maxPipelines`
   */
  registry?: NodeRegistry;
  /**
   * How often the registry is swept for workers that stopped sending heartbeats, in ms.
   * @default a quarter of `heartbeatTimeoutMs`, between 50 ms and 5 s
   */
  sweepIntervalMs?: number;
  /**
   * How long `close()` waits for requests in flight before dropping their connections, in ms.
   * @default 5000
   */
  closeGraceMs?: number;
  /**
   * A connection on which no byte moves either way for this long is closed, in ms: a client that
   * stalls mid-request or stops reading an answer. A request as a whole has no time limit, so a
   * large artifact upload or download on a slow link is not cut while its bytes keep moving
   * (Node's own `requestTimeout`, 300 s for the whole request, would cut a 1 GiB upload slower
   * than 3.5 MB/s; it is off). Headers must still arrive within 60 s (`headersTimeout`). `0`: never.
   * @default 60000
   */
  idleTimeoutMs?: number;
  /**
   * Serve HTTPS with this certificate and key (PEM contents, not file paths). With `clientCa`
   * the server requires mutual TLS: a client must present a certificate signed by that CA, or
   * its connection is refused during the handshake.
   * @default plain HTTP
   */
  tls?: ServerTls;
};

/** A listening orchestrator. */
export interface RunningOrchestrator {
  /** A URL that reaches the orchestrator from this machine, e.g. `http://127.0.0.1:8080` (`https://` with `tls`). */
  url: string;
  /** The port it listens on (the chosen one when `port` was 0). */
  port: number;
  registry: NodeRegistry;
  /**
   * Which worker endpoints it registers, its own listening address and port included: pass it
   * to `runPipeline` (`endpointPolicy`) so that each connection to a worker is checked by it.
   */
  endpointPolicy: WorkerEndpointPolicy;
  /**
   * The executions whose output it takes: pass it to `runPipeline` (`executionLogs`), which opens
   * the log of each attempt it dispatches.
   */
  executionLogs: ExecutionLogs;
  /**
   * Its artifact store, swept once when it started: call `endRun()` when a run ends (the CLI
   * does), so the directory store keeps the run's blobs for `artifactRetentionMs` from then and
   * removes what is older.
   */
  artifactStore: ArtifactStore;
  /** Stops the sweep timer and the server (waiting for requests in flight); safe to call twice. */
  close(): Promise<void>;
}

/**
 * Starts the orchestrator's HTTP API (HTTPS with `tls`) and the registry's sweep timer. On a
 * non-loopback address it warns (logger `warn`) about plain HTTP and missing tokens.
 *
 * ```ts
 * const orchestrator = await startOrchestrator({ port: 0, host: '127.0.0.1' });
 * console.log(orchestrator.url); // http://127.0.0.1:41234
 * await orchestrator.close();
 * ```
 *
 * @throws OrchestratorConfigError for an invalid option.
 * @throws OrchestratorStartError (code `ListenFailed`) when the port cannot be listened on.
 */
export async function startOrchestrator(options: StartOrchestratorOptions = {}): Promise<RunningOrchestrator> {
  const resolved = resolveOrchestratorOptions(options);
  const port = options.port ?? DEFAULT_START_OPTIONS.port;
  const host = options.host ?? DEFAULT_START_OPTIONS.host;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new OrchestratorConfigError(
      'InvalidSetting',
      'port',
      `Invalid setting port: must be an integer from 0 to 65535, got ${port}`,
    );
  }
  const registry =
    options.registry ??
    new InMemoryNodeRegistry({
      heartbeatTimeoutMs: resolved.heartbeatTimeoutMs,
      offlineRetentionMs: resolved.offlineRetentionMs,
      maxWorkers: resolved.maxWorkers,
      maxPipelines: resolved.maxPipelines,
    });
  const sweepIntervalMs =
    options.sweepIntervalMs ?? Math.min(5_000, Math.max(50, Math.floor(resolved.heartbeatTimeoutMs / 4)));
  const closeGraceMs = options.closeGraceMs ?? DEFAULT_START_OPTIONS.closeGraceMs;

  const endpointPolicy = endpointPolicyOf(resolved);
  const executionLogs = new ExecutionLogs();
  const artifactStore = artifactStoreOf(resolved);
  try {
    await artifactStore.check();
  } catch (error) {
    throw new OrchestratorStartError(
      'ArtifactStoreUnavailable',
      artifactStore.kind === 'local'
        ? `Cannot use the artifact store directory ${resolved.artifactsDir} (--artifacts-dir): ${(error as Error).message}`
        : `Cannot use the artifact store ${redactUrl(resolved.artifactStore ?? '')}: ${(error as Error).message} (the orchestrator needs s3:GetObject and s3:PutObject on the prefix's objects and s3:ListBucket on the bucket)`,
      { cause: error },
    );
  }
  await sweepArtifacts(artifactStore, resolved.logger);
  const app = createApp({ registry, options: resolved, endpointPolicy, executionLogs, artifactStore });
  let server: ReturnType<typeof createHttpOrHttpsServer>;
  try {
    server = createHttpOrHttpsServer(app, options.tls);
  } catch (error) {
    throw new OrchestratorConfigError(
      'InvalidSetting',
      'tls',
      `Invalid setting tls: cannot use the certificate, key or client CA: ${(error as Error).message}`,
      { cause: error },
    );
  }
  let actualPort: number;
  try {
    actualPort = await listen(server, port, host);
  } catch (error) {
    throw new OrchestratorStartError('ListenFailed', `Cannot listen on ${host}:${port}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  // Large blobs take as long as their bytes keep moving: no limit on a whole request, an idle one
  // on the connection (a timed-out socket is destroyed: no 'timeout' listener keeps it).
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.setTimeout(options.idleTimeoutMs ?? DEFAULT_START_OPTIONS.idleTimeoutMs);
  const url = `${options.tls ? 'https' : 'http'}://${reachableHost(host)}:${actualPort}`;
  // The address bound (a name given as `host` resolved), `0.0.0.0`/`::` for every address.
  const bound = server.address();
  endpointPolicy.addOwnListener({
    host: typeof bound === 'object' && bound !== null ? bound.address : host,
    port: actualPort,
  });

  // Workers the sweep removes (offline for the retention), logged once per sweep.
  let removed: string[] = [];
  const unsubscribe = registry.onChange((event) => {
    if (event.type === 'removed') removed.push(event.workerId);
  });
  // A long timer: `sweepIntervalMs` is the caller's, of any length.
  const sweeper = longInterval(
    () => {
      try {
        const lost = registry.sweep();
        if (lost.length > 0)
          resolved.logger.warn({ workerIds: lost }, 'workers stopped sending heartbeats and are offline');
        if (removed.length > 0) {
          resolved.logger.info(
            {
              workerIds:
                removed.length <= 100 ? removed : [...removed.slice(0, 100), `… and ${removed.length - 100} more`],
            },
            'offline workers removed after the offline retention',
          );
          removed = [];
        }
      } catch (error) {
        resolved.logger.error({ err: error }, 'registry sweep failed');
      }
    },
    sweepIntervalMs,
    { unref: true },
  );
  resolved.logger.info(
    {
      url,
      host,
      port: actualPort,
      tls: options.tls ? (options.tls.clientCa ? 'mutual' : 'server') : 'off',
      // Where artifacts go: the directory, or the bucket and prefix (never its endpoint, which
      // may carry credentials in its URL).
      artifacts:
        artifactStore.kind === 'local'
          ? { kind: 'local', dir: resolved.artifactsDir }
          : { kind: 's3', url: resolved.artifactStore },
    },
    'orchestrator listening',
  );
  for (const warning of orchestratorStartupWarnings({
    host,
    tls: options.tls !== undefined,
    joinToken: resolved.joinToken !== undefined,
    adminToken: resolved.adminToken !== undefined,
  })) {
    resolved.logger.warn({ host }, warning);
  }

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      sweeper.clear();
      unsubscribe();
      await closeGracefully(server, closeGraceMs);
      resolved.logger.info('orchestrator stopped');
    })();
    return closing;
  };
  return { url, port: actualPort, registry, endpointPolicy, executionLogs, artifactStore, close };
}

/**
 * The start's sweep of the artifact store: what it removed is logged; a failure is logged and
 * does not stop the start (the next run's end sweeps again).
 */
async function sweepArtifacts(store: ArtifactStore, logger: Logger): Promise<void> {
  try {
    const removed = await store.sweep();
    if (removed > 0) logger.info({ removed }, 'artifact store: blobs past the retention removed');
  } catch (error) {
    logger.error({ err: error }, 'artifact store: the sweep failed');
  }
}
