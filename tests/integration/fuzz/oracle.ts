/**
 * Sending a request to the {@link FuzzTarget} (with the token its `auth` asks for), and what
 * every answer must be: below 500 (but execute's module failures), JSON that parses with the
 * contract's schema for its route and status (or the error body), 401 with `WWW-Authenticate`,
 * 429 with `Retry-After`.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorBodySchema, executeModuleFailureSchema, parseTimeSpan } from '@mpd/contract';
import { DEFAULT_MODULE_TIMEOUT_MS } from '@mpd/pipeline';
import fc from 'fast-check';
import { type RequestSpec, truncate } from './requests.js';
import { routeHit } from './routes.js';
import { ADMIN_TOKEN, type FuzzTarget, JOIN_TOKEN, WORKER_TOKEN } from './servers.js';
import { isPlainObject, objectOf, toJson } from './values.js';

/** The credential of the worker a request names (body `workerId`, `workerNode.id`, or the path). */
function ownCredentialOf(target: FuzzTarget, request: RequestSpec): string | undefined {
  const body = request.body?.kind === 'json' && isPlainObject(request.body.value) ? request.body.value : undefined;
  const named =
    (typeof body?.workerId === 'string' && body.workerId) ||
    (isPlainObject(body?.workerNode) && typeof body.workerNode.id === 'string' && body.workerNode.id) ||
    /^\/api\/workers\/([^/?]+)/.exec(request.path)?.[1];
  return named ? target.credentials.get(named) : undefined;
}

function authorization(target: FuzzTarget, request: RequestSpec, own: string | undefined): string | undefined {
  const { auth: choice } = request;
  if (choice.kind === 'none') return undefined;
  if (choice.kind === 'header') return choice.value;
  if (choice.kind === 'right') {
    const route = routeHit(request)?.name;
    if (request.server === 'worker') return `Bearer ${WORKER_TOKEN}`;
    if (route === 'workers.register') return `Bearer ${JOIN_TOKEN}`;
    if ((route === 'workers.heartbeat' || route === 'workers.drain' || route === 'workers.unregister') && own) {
      return `Bearer ${own}`;
    }
    return `Bearer ${ADMIN_TOKEN}`;
  }
  const issued = [...target.credentials.values()];
  const token = {
    join: JOIN_TOKEN,
    admin: ADMIN_TOKEN,
    worker: WORKER_TOKEN,
    own: own ?? issued[choice.index % Math.max(1, issued.length)] ?? 'mpdw_none-issued-yet',
    issued: issued[choice.index % Math.max(1, issued.length)] ?? 'mpdw_none-issued-yet',
  }[choice.token];
  return `${choice.scheme}${token}`;
}

/** The body to send, its working directory moved into the test's temporary directory (whatever the fuzzer put there). */
function confined(target: FuzzTarget, request: RequestSpec): unknown {
  if (request.body?.kind !== 'json') return undefined;
  const body = request.body.value;
  if (request.server !== 'worker' || !isPlainObject(body)) return body;
  const dir = body.workingDirectory;
  if (typeof dir !== 'string' || dir.length > 4096) return body;
  const safe = join(target.workDir, createHash('sha256').update(dir).digest('hex').slice(0, 8));
  return objectOf(Object.keys(body).map((key) => [key, key === 'workingDirectory' ? safe : body[key]]));
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

async function send(target: FuzzTarget, request: RequestSpec): Promise<Answer> {
  if (request.delayMs) await sleep(request.delayMs);
  const own = ownCredentialOf(target, request);
  const headers: Record<string, string> = {};
  const token = authorization(target, request, own);
  if (token !== undefined) headers.authorization = token;
  if (request.contentType !== null) headers['content-type'] = request.contentType;
  if (request.contentEncoding !== undefined) headers['content-encoding'] = request.contentEncoding;
  const bodyless = request.method === 'GET' || request.method === 'HEAD';
  let body: Uint8Array | undefined;
  if (!bodyless && request.body) {
    body =
      request.body.kind === 'bytes'
        ? request.body.bytes
        : Buffer.from(toJson(confined(target, request), { ownCredential: own }));
  }
  const response = await fetch(`${target.urls[request.server]}${request.path}`, {
    method: request.method,
    headers,
    ...(body ? { body } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/** What the fuzzer saw, for its closing checks and the report (`FUZZ_STATS=1`). */
export interface FuzzStats {
  requestsSent: number;
  /** `server route status` → count. */
  readonly answers: Map<string, number>;
  /** Execute answers that were module failures (kind → count). */
  readonly moduleFailures: Map<string, number>;
}

export const newStats = (): FuzzStats => ({ requestsSent: 0, answers: new Map(), moduleFailures: new Map() });

/**
 * The longest delay Node's setTimeout keeps (2^31−1 ms; longer ones fire at once). A fact of
 * Node, not of mpd: the oracle states it itself rather than reaching into the worker's
 * internals (server-kit's `longTimeout`, which the worker arms them with, re-arms timers past it).
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

function executionIdOf(request: RequestSpec): string | undefined {
  const body = request.body?.kind === 'json' ? request.body.value : undefined;
  return isPlainObject(body) && typeof body.executionId === 'string' ? body.executionId : undefined;
}

/** The timeout an execute request asks for (the worker's default when it names none), in ms. */
function requestedTimeoutMs(request: RequestSpec): number | undefined {
  const body = request.body?.kind === 'json' ? request.body.value : undefined;
  if (!isPlainObject(body)) return undefined;
  return typeof body.timeout === 'string' ? parseTimeSpan(body.timeout) : DEFAULT_MODULE_TIMEOUT_MS;
}

/** The problem with an answer, or undefined when it keeps the contract. */
function problemWith(stats: FuzzStats, request: RequestSpec, answer: Answer, firstRun: boolean): string | undefined {
  const route = routeHit(request);
  const { status, headers, text } = answer;
  const key = `${request.server} ${route?.name ?? '(none)'} ${status}`;
  stats.answers.set(key, (stats.answers.get(key) ?? 0) + 1);
  if (status === 401 && !headers.get('www-authenticate')) return '401 without WWW-Authenticate';
  if (status === 429 && !headers.get('retry-after')) return '429 without Retry-After';
  if (request.method === 'HEAD' || status === 204 || status === 304) return undefined;
  const type = headers.get('content-type') ?? '';
  if (!/^application\/json\b/i.test(type))
    return `${status} answered ${JSON.stringify(type)}, not JSON: ${truncate(text)}`;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return `${status} answered text that is not JSON: ${truncate(text)}`;
  }
  // A full registry sheds registrations (503 TooManyWorkers or TooManyPipelines, issue 11): an
  // answer the contract declares, not a server error; many runs register past the bounds.
  if (status === 503 && route?.name === 'workers.register') {
    if (!headers.get('retry-after')) return '503 without Retry-After';
    return errorBodySchema.safeParse(body).success ? undefined : `503 that is not an error body: ${truncate(text)}`;
  }
  if (status >= 500) {
    if (route?.name !== 'execution.execute' || status !== 500)
      return `${status} from ${route?.name ?? 'no route'}: ${truncate(text)}`;
    const failure = executeModuleFailureSchema.safeParse(body);
    if (!failure.success) return `execute 500 that is not a module failure: ${truncate(text)}`;
    const kind = failure.data.failureKind ?? 'Error';
    stats.moduleFailures.set(kind, (stats.moduleFailures.get(kind) ?? 0) + 1);
    // The modules never throw: only a timeout (the request's own) or a cancellation may fail them.
    if (kind === 'Error') return `execute failed a module that cannot throw: ${truncate(text)}`;
    // A module that returns at once cannot reach a timeout of a minute or more (an execution
    // id sent before may join an earlier execution that had a shorter one).
    if (kind === 'TimedOut' && firstRun) {
      const timeoutMs = requestedTimeoutMs(request);
      if (timeoutMs !== undefined && timeoutMs >= 60_000 && timeoutMs <= MAX_TIMER_MS) {
        return `execute timed out a module that returns at once, with a timeout of ${timeoutMs} ms: ${truncate(text)}`;
      }
    }
    return undefined;
  }
  if (route?.name === 'openapi' && status === 200) {
    const document = body as { openapi?: unknown; paths?: unknown };
    return typeof document.openapi === 'string' && isPlainObject(document.paths)
      ? undefined
      : 'openapi.json is not an OpenAPI document';
  }
  const schema = route?.responses[status];
  if (schema?.safeParse(body).success) return undefined;
  if (status >= 400 && errorBodySchema.safeParse(body).success) return undefined;
  return `${status} from ${route?.name ?? 'no route'} does not parse with the contract's schema for it: ${truncate(text)}`;
}

/** Sends the requests at once; fails on an answer that breaks the contract (or no answer). */
export async function sendAll(target: FuzzTarget, stats: FuzzStats, requests: readonly RequestSpec[]): Promise<void> {
  const problems = await Promise.all(
    requests.map(async (request) => {
      stats.requestsSent++;
      const executionId = routeHit(request)?.name === 'execution.execute' ? executionIdOf(request) : undefined;
      const firstRun = executionId !== undefined && !target.executionIds.has(executionId);
      if (executionId !== undefined) target.executionIds.add(executionId);
      let answer: Answer;
      try {
        answer = await send(target, request);
      } catch (error) {
        return `no answer (${String((error as Error).cause ?? error)})`;
      }
      if (
        request.server === 'orchestrator' &&
        answer.status === 200 &&
        routeHit(request)?.name === 'workers.register'
      ) {
        const registered = JSON.parse(answer.text) as { workerId: string; credential?: string };
        if (registered.credential) target.credentials.set(registered.workerId, registered.credential);
      }
      return problemWith(stats, request, answer, firstRun);
    }),
  );
  problems.forEach((problem, index) => {
    if (problem) throw new Error(`${fc.stringify(requests[index])}\n→ ${problem}`);
  });
}
