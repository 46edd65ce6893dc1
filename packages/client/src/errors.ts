/** Why a call did not get an answer from the server. */
export type MpdClientErrorCode =
  /**
   * No connection to the server could be made, so the request was not served: connection
   * refused, DNS failure, connect timeout, host or network unreachable, a TLS handshake the
   * client saw fail (see {@link MpdClientError.errno}).
   */
  | 'Unreachable'
  /**
   * The connection was made, then reset or closed before the complete answer arrived: the
   * server may have received the request and acted on it (a worker may be running the module).
   * Also an https server that closes the connection before sending a byte (`errno`
   * `UND_ERR_SOCKET`): that is how a TLS 1.3 server refuses a client certificate, but a server
   * that read the request and then closed looks the same to the client.
   */
  | 'ConnectionLost'
  /** No complete answer within the call's timeout. */
  | 'Timeout'
  /** The caller's `signal` aborted the call. */
  | 'Aborted'
  /** The answer's body was larger than the call's `maxResponseBytes`: it was not read. */
  | 'TooLarge'
  /**
   * A success answer about something other than what the call named: a register or drain answer
   * naming another worker than the call's. The server (or something in between) acted on
   * another worker, or is not the server the call was meant for: the answer is not taken.
   */
  | 'UnexpectedAnswer';

/**
 * A call that failed at the transport level: the server's answer, if any, never arrived (or,
 * `TooLarge`, was too large to read). Its message names the call by its URL masked by
 * `@mpd/contract`'s `redactUrl` (user name and password up to the last `@`, query, fragment):
 * an `@` in a path hides the host before it too (`http://host/a@b` shows as `http://***@b`).
 */
export class MpdClientError extends Error {
  override readonly name = 'MpdClientError';
  /**
   * The network error's own code for `Unreachable` and `ConnectionLost` (`ECONNREFUSED`,
   * `ENOTFOUND`, `ECONNRESET`, `UND_ERR_SOCKET`, `UND_ERR_CONNECT_TIMEOUT`, a TLS code such as
   * `UNABLE_TO_VERIFY_LEAF_SIGNATURE`), when it has one; undefined for `Timeout` and `Aborted`.
   */
  readonly errno: string | undefined;

  constructor(
    readonly code: MpdClientErrorCode,
    message: string,
    options?: { cause?: unknown; errno?: string | undefined },
  ) {
    super(message, options);
    this.errno = options?.errno;
  }
}
