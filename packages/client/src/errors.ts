/** Why a call did not get an answer from the server. */
export type MpdClientErrorCode =
  /** The server could not be reached (connection refused or reset, DNS failure, TLS failure). */
  | 'Unreachable'
  /** No complete answer within the call's timeout. */
  | 'Timeout'
  /** The caller's `signal` aborted the call. */
  | 'Aborted';

/** A call that failed at the transport level: the server's answer, if any, never arrived. */
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
