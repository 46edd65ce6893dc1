import type { ClientOptions } from '@mpd/client';
import type { Pipeline } from '@mpd/pipeline';
import type { Logger } from 'pino';

/** Options of {@link startWorker}. */
export interface WorkerOptions {
  /**
   * The worker's id, unique in the cluster.
   * @default `worker-<hostname>-<random>`
   */
  id?: string;
  /**
   * Port to listen on; 0 picks a free one.
   * @default 9000
   */
  port?: number;
  /**
   * Address to listen on.
   * @default '0.0.0.0'
   */
  host?: string;
  /**
   * The URL the orchestrator calls this worker at.
   * @default `http://<host>:<port>` (`https://` with `tls`), with the machine's hostname when listening on all addresses
   */
  endpoint?: string;
  /**
   * Serve HTTPS with this certificate and key (PEM contents, not file paths). With `clientCa`
   * the worker requires mutual TLS: callers (the orchestrator) must present a certificate
   * signed by that CA, or the handshake fails.
   * @default plain HTTP
   */
  tls?: {
    /** The worker's certificate (chain), PEM. */
    cert: string | Buffer;
    /** The certificate's private key, PEM. */
    key: string | Buffer;
    /**
     * The CA(s) client certificates must be signed by: set it to require mutual TLS.
     * @default no client certificate asked for
     */
    clientCa?: string | Buffer;
  };
  /** The orchestrator's base URL; without it the worker serves its API but registers nowhere. */
  orchestratorUrl?: string;
  /**
   * TLS settings of the calls to an `https://` orchestrator (PEM contents): the CA its
   * certificate must chain to, and the client certificate for an orchestrator that requires
   * mutual TLS.
   * @default Node's default trusted roots, no client certificate
   */
  orchestratorTls?: ClientOptions['tls'];
  /** The cluster join token to register with (the orchestrator's `MPD_JOIN_TOKEN`). */
  joinToken?: string;
  /**
   * A file where the worker keeps the credential the orchestrator gave it, between runs:
   * written (mode 0600) after each registration, read at start and presented when registering.
   * A worker restarted after a crash then takes its place again at once; without it, its id
   * stays taken (409 `WorkerIdTaken`, retried) until the orchestrator counts the crashed run
   * `Offline`, after the heartbeat timeout. Keep it private, like the join token.
   * @default none: the credential lives in memory only
   */
  credentialFile?: string;
  /**
   * A token the orchestrator may call this worker with, besides the credential the worker gets
   * at registration. Once the worker has either, execute and cancel calls without it get 401.
   */
  token?: string;
  /** The pipeline whose modules this worker runs. */
  pipeline?: Pipeline;
  /**
   * How many modules may run at once on this worker (its slots; the CLI's `--slots`),
   * advertised to the orchestrator as `capabilities.maxParallelModules`. Not the orchestrator's
   * `maxParallelism`, which caps modules across the whole cluster.
   * @default the number of CPUs (`os.availableParallelism()`)
   */
  slots?: number;
  /** @default [] */
  tags?: string[];
  /**
   * Tools advertised to the orchestrator.
   * @default the known tools found on PATH
   */
  tools?: string[];
  /**
   * Operating system advertised to the orchestrator.
   * @default this machine's (`linux`, `windows`, `macos`)
   */
  os?: string;
  /**
   * Working directory of modules whose request names none.
   * @default process.cwd()
   */
  workingDirectory?: string;
  /**
   * Timeout of a module whose request and definition set none (ms).
   * @default 1_800_000 (30 minutes)
   */
  defaultTimeoutMs?: number;
  /**
   * How long to let running modules finish on shutdown before cancelling them (ms).
   * @default 30_000
   */
  shutdownGraceMs?: number;
  /**
   * Largest accepted request body.
   * @default '100mb'
   */
  bodyLimit?: string;
  /** @default false */
  validateResponses?: boolean;
  /** First registration retry delay while the orchestrator is unreachable (ms). @default 500 */
  initialBackoffMs?: number;
  /** Longest registration retry delay (ms). @default 30_000 */
  maxBackoffMs?: number;
  /** @default a pino logger at `info` writing to stderr */
  logger?: Logger;
}
