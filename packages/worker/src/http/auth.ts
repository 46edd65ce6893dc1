import { safeEqual } from '@mpd/server-kit';

/** Why a call is refused; the message never repeats the token. */
export type Denial = { status: 401; message: string };

const NEEDS_TOKEN = 'execute and cancel take the bearer token the orchestrator got for this worker';
const WRONG_TOKEN = 'the bearer token is not valid for this worker';

/**
 * Execute and cancel need one of the `accepted` tokens (the worker's credential, a configured
 * token), compared in constant time; with none accepted the calls are open (a worker that never
 * registered, on a trusted network). `undefined` means allowed.
 */
export function mayCall(token: string | undefined, accepted: readonly string[]): Denial | undefined {
  if (accepted.length === 0) return undefined;
  if (token !== undefined && accepted.some((candidate) => safeEqual(token, candidate))) return undefined;
  return { status: 401, message: token === undefined ? NEEDS_TOKEN : WRONG_TOKEN };
}
