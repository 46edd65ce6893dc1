/** Options shared by {@link createOrchestratorClient} and {@link createWorkerClient}. */
export interface ClientOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /**
   * How long a call may wait for a complete answer, in milliseconds. `execute` calls wait
   * instead for the request's `timeout` plus {@link ClientOptions.executeMarginMs}.
   * @default 30_000
   */
  timeoutMs?: number;
  /**
   * How much longer than the module's own timeout an `execute` call waits, so that the
   * worker's answer about a timed-out module still arrives.
   * @default 60_000
   */
  executeMarginMs?: number;
  /**
   * Bearer token sent with every call (`Authorization: Bearer <token>`): the admin token for an
   * operator's tools, a worker's credential, the join token to register.
   */
  token?: string;
  /**
   * The largest answer body a call reads, in bytes: past it the call fails with `MpdClientError`
   * `TooLarge`, unread. A call's own `maxResponseBytes` overrides it.
   * @default none; for `execute`, what an answer with a result of 16 MiB can take (32 MiB + 64 KiB)
   */
  maxResponseBytes?: number;
  /**
   * The addresses each new connection to the server's host may go to, tried in order (the next
   * when one refuses the connection): given the URL's host (a name, or an IP address without
   * brackets) and port. Throwing refuses the connection, and nothing is sent: the call fails
   * `Unreachable`, with the thrown error's `code` (a resolver's `ENOTFOUND`) or
   * `MPD_ADDRESS_REFUSED` as its `errno`. TLS still checks the certificate against the URL's
   * host. The orchestrator checks each address of a worker against its endpoint policy here.
   * @default none: undici resolves the host itself
   */
  resolveHost?: (hostname: string, port: number) => Promise<readonly string[]>;
  /** Headers sent with every call. */
  headers?: Record<string, string>;
  /**
   * Validate response bodies against the contract (throws on a body that does not match).
   * @default false
   */
  validateResponse?: boolean;
  /**
   * TLS settings for `https://` servers, PEM contents (not file paths). Without `ca` the
   * server's certificate must chain to Node's default trusted roots.
   */
  tls?: {
    /**
     * The certificate authorities the server's certificate must chain to: give the CA of a
     * private cluster here. Replaces Node's default trusted roots.
     * @default Node's default trusted roots
     */
    ca?: string | Buffer;
    /**
     * A client certificate, presented to servers that require one (mutual TLS); needs `key`.
     * @default none
     */
    cert?: string | Buffer;
    /**
     * The private key of `cert`.
     * @default none
     */
    key?: string | Buffer;
    /**
     * Refuse a server whose certificate does not verify (or does not name the host). Turn it
     * off only for a throwaway local test: anyone in between could then read every call.
     * @default true
     */
    rejectUnauthorized?: boolean;
  };
}

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_EXECUTE_MARGIN_MS = 60_000;
