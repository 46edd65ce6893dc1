import { safeEqual } from '@mpd/server-kit';

/**
 * Why a call is refused; the message never repeats the token. 401: no valid token (for good,
 * until the caller sends one); 503 `WorkerNotReady`: the worker's first registration has not
 * completed, so the credential it will take is not known yet: try again after `retryAfterSeconds`.
 */
export type Denial =
  | { status: 401; message: string; retryAfterSeconds?: undefined }
  | { status: 503; message: string; retryAfterSeconds: number };

/**
 * Who may call execute and cancel now: what the worker's credential state gives (read per call,
 * the credential changes at each registration).
 */
export interface CallGate {
  /** Tokens that let a call in: the worker's credential once it has one, its configured `token`. */
  accepted: readonly string[];
  /**
   * The worker registers with an orchestrator and its first registration has not completed, or
   * it registers again after an attempt that may have been served went unanswered: the
   * credential the orchestrator will call it with is not known yet, so a call without an accepted
   * token is told to come back (503) rather than refused for good.
   */
  awaitingRegistration: boolean;
  /**
   * Explicit open mode (`WorkerOptions.open`, `--open`): while no token is accepted, calls without
   * one are let in (a worker on a trusted network with no orchestrator and no token).
   */
  open: boolean;
  /**
   * Resolves when the first registration completes, or after `maxMs` (whichever comes first):
   * a call refused with 503 waits this long and is judged again, because the orchestrator may
   * call as soon as it answered the registration, before this process has read that answer.
   * @default none: no wait
   */
  untilRegistered?: (maxMs: number) => Promise<void>;
}

/**
 * How long a call that would get 503 `WorkerNotReady` waits for the first registration to
 * complete before it is answered, in ms: enough for a registration answer already on its way
 * (the orchestrator dispatches as soon as it registered the worker), short enough to hold no
 * connection long.
 */
export const NOT_READY_HOLD_MS = 1_000;

/**
 * How long a caller refused with 503 `WorkerNotReady` should wait, in seconds: a registration
 * takes one round trip to the orchestrator, so a second is usually enough; the orchestrator only
 * calls a worker once it has registered, so its own calls never wait.
 */
export const NOT_READY_RETRY_AFTER_SECONDS = 1;

const NEEDS_TOKEN = 'execute and cancel take the bearer token the orchestrator got for this worker';
const WRONG_TOKEN = 'the bearer token is not valid for this worker';
const NOT_READY =
  'the worker has not completed its first registration, or a registration again whose answer it lost: execute and cancel take the credential the orchestrator issues then';
const NO_TOKEN_AT_ALL =
  'this worker accepts no token: give it --token (MPD_WORKER_TOKEN) or an --orchestrator to register with, or start it with --open on a trusted network';

/**
 * Whether a call to execute or cancel carrying `token` may go through (`undefined`), else why
 * not. Fails closed: a call goes through with one of `gate.accepted` (compared in constant
 * time), or without a token only in open mode while no token is accepted. Otherwise 503 while
 * the worker awaits its first registration, 401 after (and for a worker with nothing to accept
 * that is not in open mode).
 */
export function mayCall(token: string | undefined, gate: CallGate): Denial | undefined {
  const { accepted } = gate;
  if (token !== undefined) {
    // A loop, not `some` with a closure made per call (issue 14, round P).
    for (const candidate of accepted) if (safeEqual(token, candidate)) return undefined;
  }
  if (gate.open && accepted.length === 0) return undefined;
  if (gate.awaitingRegistration) {
    return { status: 503, message: NOT_READY, retryAfterSeconds: NOT_READY_RETRY_AFTER_SECONDS };
  }
  if (accepted.length === 0) return { status: 401, message: NO_TOKEN_AT_ALL };
  return { status: 401, message: token === undefined ? NEEDS_TOKEN : WRONG_TOKEN };
}

/**
 * {@link mayCall}, holding a call that would get 503 for up to {@link NOT_READY_HOLD_MS} until the
 * first registration completes (`gate().untilRegistered`), then judging it again with the gate
 * as it is then: a promise only then. A verdict that is final now is given now (every call of a
 * registered worker's orchestrator): a promise and a turn of the microtask queue less per call.
 */
export function mayCallWhenReady(
  token: string | undefined,
  gate: () => CallGate,
): Denial | undefined | Promise<Denial | undefined> {
  const first = gate();
  const denial = mayCall(token, first);
  if (denial?.status !== 503 || !first.untilRegistered) return denial;
  return first.untilRegistered(NOT_READY_HOLD_MS).then(() => mayCall(token, gate()));
}

/** What {@link callGateOf} reads of the worker's link with its orchestrator (`OrchestratorLink`). */
export interface GateLink {
  readonly credential: string | undefined;
  readonly awaitingRegistration: boolean;
  registeredWithin(maxMs: number): Promise<void>;
}

/**
 * The worker's {@link CallGate} as read per call: `token` (`--token`, accepted first) and the
 * link's credential once it has one, `open` mode, and whether the link awaits a registration.
 * The same gate object is given again while the link's credential and `awaitingRegistration` are
 * unchanged, and a new one as soon as either changed (read at each call: the credential changes
 * at each registration): a gate made per call was an array, a filter, a closure and an object per
 * `execute` (issue 14, round P).
 */
export function callGateOf(
  { token, open }: { token?: string | undefined; open: boolean },
  link: GateLink | undefined,
): () => CallGate {
  const untilRegistered = (maxMs: number): Promise<void> => link?.registeredWithin(maxMs) ?? Promise.resolve();
  let gate: CallGate | undefined;
  let credential: string | undefined;
  return () => {
    const current = link?.credential;
    const awaitingRegistration = link?.awaitingRegistration ?? false;
    if (gate === undefined || current !== credential || awaitingRegistration !== gate.awaitingRegistration) {
      credential = current;
      const accepted: string[] = [];
      if (token !== undefined) accepted.push(token);
      if (current !== undefined) accepted.push(current);
      gate = { accepted, awaitingRegistration, open, untilRegistered };
    }
    return gate;
  };
}
