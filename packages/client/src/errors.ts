/** Why a call did not get an answer from the server. */
export type MpdClientErrorCode =
  /** The server could not be reached (connection refused or reset, DNS failure, TLS failure). */
  | 'Unreachable'
  /** No complete answer within the call's timeout. */
  | 'Timeout'
  /** The caller's `signal` aborted the call. */
  | 'Aborted'
  /** The answer's body was larger than the call's `maxResponseBytes`: it was not read. */
  | 'TooLarge';

/**
 * A call that failed at the transport level: the server's answer, if any, never arrived (or,
 * `TooLarge`, was too large to read).
 */
export class MpdClientError extends Error {
  override readonly name = 'MpdClientError';
  constructor(
    readonly code: MpdClientErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
