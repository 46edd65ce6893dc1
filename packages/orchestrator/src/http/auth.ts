import { bearerToken, safeEqual, wellFormed } from '@mpd/server-kit';
import type { Request } from 'express';
import type { NodeRegistry } from '../registry/node-registry.js';

/** Who is calling, from the bearer token. */
export type Caller =
  | { kind: 'anonymous' }
  /** A token was given but it is none of ours. */
  | { kind: 'invalid' }
  | { kind: 'admin' }
  /** The cluster join token: may register. */
  | { kind: 'join' }
  /** A worker's credential. */
  | { kind: 'worker'; workerId: string };

export interface AuthTokens {
  joinToken?: string | undefined;
  adminToken?: string | undefined;
}

/** The caller of each request, once authenticated (the failure limiter, the route's checks and its limiter all ask). */
const callers = new WeakMap<Request, Caller>();

/**
 * Authenticates a request, once per request; tokens are compared in constant time, credentials
 * looked up by hash.
 */
export function callerOf(req: Request, tokens: AuthTokens, registry: NodeRegistry): Caller {
  let caller = callers.get(req);
  if (caller === undefined) {
    caller = authenticate(req, tokens, registry);
    callers.set(req, caller);
  }
  return caller;
}

function authenticate(req: Request, tokens: AuthTokens, registry: NodeRegistry): Caller {
  const token = bearerToken(req);
  if (token === undefined) return { kind: 'anonymous' };
  // Not well-formed UTF-16 (an unpaired surrogate): hashed as UTF-8 it would look up as U+FFFD in
  // its place. Never a credential of ours: the wrong one (401). A header's value (latin1) never
  // has one; a caller of this code in-process may (round X, X5; `safeEqual` refuses it too).
  if (!wellFormed(token)) return { kind: 'invalid' };
  // Workers' credentials first: most calls are heartbeats, and the lookup by hash is one hash.
  // Records the credential's use: from now on no registration retry revokes it.
  const workerId = registry.authenticate(token);
  if (workerId !== undefined) return { kind: 'worker', workerId };
  if (tokens.adminToken !== undefined && safeEqual(token, tokens.adminToken)) return { kind: 'admin' };
  if (tokens.joinToken !== undefined && safeEqual(token, tokens.joinToken)) return { kind: 'join' };
  return { kind: 'invalid' };
}

/**
 * What a request may do, decided from its caller; `undefined` means allowed. Every check but the
 * heartbeat's own-id check needs nothing from the body, so the routes run them before reading it.
 */
export type Denial = { status: 401 | 403; message: string };

const NEEDS_TOKEN = 'a bearer token is required (Authorization: Bearer <token>)';
const WRONG_TOKEN = 'the bearer token is not valid';

/** Whether the caller presents a credential or token the orchestrator accepts (on some route). */
export function isAuthenticated(caller: Caller): boolean {
  return caller.kind === 'worker' || caller.kind === 'admin' || caller.kind === 'join';
}

function unauthenticated(caller: Caller): Denial | undefined {
  if (caller.kind === 'anonymous') return { status: 401, message: NEEDS_TOKEN };
  if (caller.kind === 'invalid') return { status: 401, message: WRONG_TOKEN };
  return undefined;
}

/** Registration needs the join token (or the admin token) when a join token is set. */
export function mayRegister(caller: Caller, tokens: AuthTokens): Denial | undefined {
  if (tokens.joinToken === undefined) return undefined;
  if (caller.kind === 'join' || caller.kind === 'admin') return undefined;
  return unauthenticated(caller) ?? { status: 403, message: 'registering takes the cluster join token' };
}

/** A worker's credential is good for that worker only. */
function asItself(callerId: string, workerId: string): Denial | undefined {
  return callerId === workerId
    ? undefined
    : { status: 403, message: `a worker's credential is only good for itself, not for worker '${workerId}'` };
}

/** A worker acts on itself with its own credential; the admin on any worker. */
export function mayActOnWorker(caller: Caller, tokens: AuthTokens, workerId: string): Denial | undefined {
  if (tokens.joinToken === undefined && tokens.adminToken === undefined) return undefined;
  if (caller.kind === 'admin') return undefined;
  if (caller.kind === 'worker') return asItself(caller.workerId, workerId);
  return (
    unauthenticated(caller) ?? {
      status: 403,
      message: `acting on worker '${workerId}' takes its credential or the admin token`,
    }
  );
}

/**
 * Heartbeats need the worker's own credential when a join token is set. Without `workerId` (before
 * the body is read): whether the caller presents a worker's credential at all.
 */
export function mayHeartbeat(caller: Caller, tokens: AuthTokens, workerId?: string): Denial | undefined {
  if (tokens.joinToken === undefined) return undefined;
  if (caller.kind === 'worker') return workerId === undefined ? undefined : asItself(caller.workerId, workerId);
  return (
    unauthenticated(caller) ?? {
      status: 403,
      message: 'heartbeats take the credential the worker got when it registered',
    }
  );
}

/** Listing workers needs the admin token when one is set. */
export function mayAdminister(caller: Caller, tokens: AuthTokens): Denial | undefined {
  if (tokens.adminToken === undefined || caller.kind === 'admin') return undefined;
  return unauthenticated(caller) ?? { status: 403, message: 'this takes the admin token' };
}

/**
 * The artifact store takes a registered worker's credential or the admin token, whatever tokens
 * the orchestrator has (every worker gets a credential at registration): its blobs are a
 * pipeline's files, for the pipeline's workers and the operator only (issue 13).
 */
export function mayUseArtifacts(caller: Caller): Denial | undefined {
  if (caller.kind === 'worker' || caller.kind === 'admin') return undefined;
  return (
    unauthenticated(caller) ?? {
      status: 403,
      message: "the artifact store takes a worker's credential or the admin token",
    }
  );
}

/**
 * Module output takes a worker's credential, whether or not a join token is set (every
 * registered worker has one): the lines are attributed to the worker that presents it. Without
 * `workerId` (before the body is read): whether the caller presents a worker's credential at all.
 */
export function mayWriteOutput(caller: Caller, workerId?: string): Denial | undefined {
  if (caller.kind === 'worker') return workerId === undefined ? undefined : asItself(caller.workerId, workerId);
  return unauthenticated(caller) ?? { status: 403, message: "module output takes the worker's credential" };
}
