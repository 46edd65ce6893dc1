import {
  DEFAULT_MAX_RESULT_BYTES,
  DEFAULT_MODULE_TIMEOUT_MS,
  executeAnswerLimit,
  MASK,
  parseTimeSpan,
  redactUrl,
  workerContract,
} from '@mpd/contract';
import { EventEmitter } from 'node:events';
import { longTimeout, MAX_TIMER_DELAY_MS } from '@mpd/contract/timers';
import type { ApiFetcher, ApiFetcherArgs } from '@ts-rest/core';
import { isZodType } from '@ts-rest/core';
import type { Agent, Dispatcher } from 'undici';
import { ADDRESS_REFUSED, checkedConnector } from './checked-connector.js';
import { type ClientOptions, DEFAULT_EXECUTE_MARGIN_MS, DEFAULT_TIMEOUT_MS } from './client-options.js';
import { MpdClientError } from './errors.js';
import { loadUndici } from './undici.js';

/**
 * What every call of a client takes besides the route's own arguments (ts-rest passes a custom
 * fetcher's extra parameters through each route call).
 */
export interface CallOptions {
  /**
   * How long this call may wait for its complete answer, in ms; overrides
   * {@link ClientOptions.timeoutMs} (for `execute`: the module's timeout plus
   * {@link ClientOptions.executeMarginMs}). The orchestrator passes each attempt's deadline.
   * @default timeoutMs; for `execute`, the body's `timeout` (or 30 minutes) plus executeMarginMs
   */
  deadlineMs?: number;
  /**
   * The largest answer body this call reads, in bytes; overrides
   * {@link ClientOptions.maxResponseBytes}. Past it the call fails with `MpdClientError`
   * `TooLarge` and the rest is never read (the connection is dropped). The orchestrator passes
   * each execute call the most an answer with a result within its `maxResultBytes` can take.
   * @default maxResponseBytes; for `execute`, what a result of 16 MiB can take (`executeAnswerLimit`)
   */
  maxResponseBytes?: number;
  /**
   * Gives this call up, as `fetchOptions.signal` does (the call fails with `MpdClientError`
   * `Aborted`), without an `AbortSignal`: for a caller that makes a call per module (the
   * orchestrator's execute calls). Both may be given; either aborts the call.
   * @default none
   */
  aborter?: CallAborter;
}

/**
 * A way to give up one call (see {@link CallOptions.aborter}): {@link CallAborter.abort} aborts
 * the call it was given to, at once if it is out, or before anything is sent. One per call: a
 * call given an aborter another call in flight holds rejects with a TypeError naming `aborter`
 * before anything is sent (the aborter may be given again once that call ended).
 *
 * Not an `AbortController`: on Node 20 every `AbortSignal` gets a hidden class of its own, so
 * the sites that read a signal per call (`aborted`, `addEventListener`, `removeEventListener`,
 * in the fetcher and in node's `EventTarget`) stayed megamorphic and missed V8's inline caches
 * at every call: seven misses and a new hidden class per module in a `--log-ic` trace of the
 * orchestrator CLI (issue 14, round L).
 */
/** The fetcher's way to attach a call to its aborter: module-private, not part of the API. */
const attachCall = Symbol('CallAborter.attachCall');

export class CallAborter {
  #aborted = false;
  #call: { abort(): void } | undefined = undefined;

  /** Whether {@link CallAborter.abort} was called. */
  get aborted(): boolean {
    return this.#aborted;
  }

  /** Aborts the call (the first time only; later calls do nothing). */
  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    const call = this.#call;
    this.#call = undefined;
    call?.abort();
  }

  /**
   * The fetcher's (module-private): attaches the call's own abort while it is out, detaches it
   * (undefined) once it ended.
   * @throws TypeError naming `aborter` when attaching while another call is out with this aborter
   *   (one aborter per call: a second one would take the first call's abort over)
   */
  [attachCall](call: { abort(): void } | undefined): void {
    if (call !== undefined && this.#call !== undefined) {
      throw new TypeError('aborter: this CallAborter is already given to a call in flight (one aborter per call)');
    }
    this.#call = call;
  }
}

/**
 * A request body already serialised as JSON, given as a route's `body` (cast to the route's body
 * type): sent as its `text`, where ts-rest would serialise the body itself. For a caller that
 * keeps what it sends as JSON anyway (the worker's output shipper: its lines wait as JSON text,
 * in memory and in spill files, and serialising 1,000 line objects per batch cost more than
 * joining their texts; `pnpm bench`, benchmark 5). The text is sent as it is: the caller answers
 * for it matching the route's schema (the server validates it as any body).
 */
export class JsonText {
  constructor(readonly text: string) {}

  /** What ts-rest's own `JSON.stringify` of the body makes of it (nothing: the fetcher sends {@link JsonText.text}). */
  toJSON(): null {
    return null;
  }
}

/** The client's fetcher: ts-rest's, plus {@link CallOptions}. */
export type Fetcher = (args: ApiFetcherArgs & CallOptions) => ReturnType<ApiFetcher>;

/**
 * The options of the fetcher's undici `Agent`: undici's own header and body timeouts
 * (300 s by default) are off (0), so only the call's own deadline bounds it; `tls` becomes
 * the `connect` options of https connections (CA, client certificate, verification).
 * Exported for tests; not part of the package's public API.
 */
export function dispatcherOptions(
  timeoutMs: number,
  tls?: ClientOptions['tls'],
  resolveHost?: ClientOptions['resolveHost'],
): Agent.Options {
  const connectTimeout = Math.min(timeoutMs, 10_000);
  const connect = tls ? connectOptions(tls) : undefined;
  return {
    headersTimeout: 0,
    bodyTimeout: 0,
    connectTimeout,
    keepAliveTimeout: 10_000,
    // A connector of its own ignores `connectTimeout`: it takes the timeout itself.
    ...(resolveHost
      ? { connect: checkedConnector({ ...connect, timeout: connectTimeout }, resolveHost) }
      : connect
        ? { connect }
        : {}),
  };
}

function connectOptions(tls: NonNullable<ClientOptions['tls']>): NonNullable<Agent.Options['connect']> {
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new TypeError('tls.cert and tls.key go together: give both (a client certificate and its key) or neither');
  }
  return {
    ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
    ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
    ...(tls.key !== undefined ? { key: tls.key } : {}),
    rejectUnauthorized: tls.rejectUnauthorized ?? true,
  };
}

/**
 * A ts-rest fetcher on undici with deliberate timeouts. undici's own header and body
 * timeouts (300 s by default) are switched off: every call is bounded by its own deadline
 * instead, so an `execute` call for a module that runs for hours still gets its answer.
 *
 * Calls go through undici's `request`, not its WHATWG `fetch`: the answers are the same, at a
 * fraction of the CPU time (no Request/Response objects, no web streams, and a plain timer
 * instead of `AbortSignal.timeout`/`any`, whose signals Node 20 makes transferable). The
 * orchestrator makes one call per module, so this is most of its cost per module.
 */
export function createFetcher(options: ClientOptions): { api: Fetcher; close: () => Promise<void> } {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const executeMarginMs = options.executeMarginMs ?? DEFAULT_EXECUTE_MARGIN_MS;
  // The options are checked now (a bad `tls` throws here, as before); the agent, and undici with
  // it, is made at the first call (undici.ts).
  const agentOptions = dispatcherOptions(timeoutMs, options.tls, options.resolveHost);
  let agent: Agent | undefined;
  let closed = false;
  const dispatcher = async (): Promise<Agent> => {
    if (agent !== undefined) return agent;
    const { Agent } = await loadUndici();
    if (agent !== undefined) return agent; // another call made it meanwhile
    agent = new Agent(agentOptions);
    // Closed before any call: the call fails with undici's ClientClosedError, as it did.
    if (closed) void agent.close();
    return agent;
  };

  const maxResponseBytesFor = (args: ApiFetcherArgs & CallOptions): number | undefined => {
    if (args.maxResponseBytes !== undefined) return args.maxResponseBytes;
    if (options.maxResponseBytes !== undefined) return options.maxResponseBytes;
    return args.route === workerContract.execution.execute ? executeAnswerLimit(DEFAULT_MAX_RESULT_BYTES) : undefined;
  };

  const deadlineFor = (args: ApiFetcherArgs & CallOptions): number => {
    if (args.deadlineMs !== undefined) return args.deadlineMs;
    if (args.route !== workerContract.execution.execute) return timeoutMs;
    // An execute call that names no deadline waits for the module's own timeout plus the margin.
    const requested = (args.rawBody as { timeout?: unknown } | undefined)?.timeout;
    const moduleTimeout = typeof requested === 'string' ? parseTimeSpan(requested) : undefined;
    return (moduleTimeout ?? DEFAULT_MODULE_TIMEOUT_MS) + executeMarginMs;
  };

  const api: Fetcher = async (args) => {
    const deadline = deadlineFor(args);
    const callerSignal: AbortSignal | undefined = args.fetchOptions?.signal ?? undefined;
    const aborter = args.aborter;
    // Nothing is sent for a call its caller gave up before making it.
    if (callerSignal?.aborted || aborter?.aborted)
      throw new MpdClientError('Aborted', `${callName(args)}: aborted by the caller`);
    const abort = new CallAbort();
    // Refuses an aborter out with another call before anything is sent (and before the try, so
    // the other call's abort stays attached).
    aborter?.[attachCall](abort);
    // Deadlines are the callers' and the modules' timeouts: any length.
    const long = deadline > MAX_TIMER_DELAY_MS ? longTimeout(() => expire(abort), deadline) : undefined;
    const timer = long ? undefined : setTimeout(expire, deadline, abort);
    callerSignal?.addEventListener('abort', abort, { once: true });
    try {
      const method = args.method as Dispatcher.HttpMethod;
      const headers = args.headers;
      const body = args.rawBody instanceof JsonText ? args.rawBody.text : (args.body as string | undefined | null);
      const target = targetOf(args.path);
      // Not reached from a client (its baseUrl was parsed when it was made); were it, undici's own
      // `Invalid URL` would keep the raw URL, password included, as its `input`: a TypeError of our
      // own, redacted and without a cause, instead.
      if (target === undefined) throw new UnusableUrl(`${callName(args)}: not an http:// or https:// URL`);
      const response = await (
        await dispatcher()
      ).request({
        origin: target.origin,
        path: target.path,
        method,
        headers,
        body,
        signal: abort,
      });
      const text = await readText(response, maxResponseBytesFor(args), args);
      const answerHeaders = new AnswerHeaders(response.headers) as unknown as Headers;
      const contentType = answerHeaders.get('content-type') ?? '';
      let answer: unknown = text;
      if (contentType.includes('json')) answer = text === '' ? undefined : JSON.parse(text);
      const schema = args.route.responses[response.statusCode];
      if ((args.validateResponse ?? false) && isZodType(schema)) answer = schema.parse(answer);
      return { status: response.statusCode, body: answer, headers: answerHeaders };
    } catch (error) {
      if (error instanceof MpdClientError || error instanceof UnusableUrl) throw error;
      const where = callName(args);
      if (callerSignal?.aborted || aborter?.aborted) {
        throw new MpdClientError('Aborted', `${where}: aborted by the caller`, { cause: error });
      }
      if (abort.timedOut) {
        throw new MpdClientError('Timeout', `${where}: no answer within ${deadline} ms`, { cause: error });
      }
      if (error instanceof SyntaxError || (error as { name?: string }).name === 'ZodError') throw error;
      // undici's request throws the network error itself (its fetch wrapped it as the cause).
      const failure = error as NetworkFailure & { cause?: NetworkFailure };
      const reason = failure.code !== undefined ? failure : (failure.cause ?? failure);
      throw new MpdClientError(
        transportCode(reason),
        `${where}: ${describeFailure(reason, error, args.path, options)}`,
        { cause: error, errno: reason.code },
      );
    } finally {
      clearTimeout(timer);
      long?.clear();
      callerSignal?.removeEventListener('abort', abort);
      aborter?.[attachCall](undefined);
    }
  };

  return {
    api,
    close: async () => {
      closed = true;
      await agent?.close();
    },
  };
}

/**
 * One call's abort, for both ways a call is given up: the caller's signal (this is its listener,
 * through `handleEvent`) and the deadline ({@link expire}). An EventEmitter emitting 'abort',
 * which undici's request takes as its signal (its docs: `AbortSignal | EventEmitter`), where an
 * AbortController cost about 3.5 µs more per call (bench/execute-call.ts, issue 14 round G); an
 * object with methods rather than closures per call, each of which tsx's `keepNames` names with
 * an `Object.defineProperty` (about 2 % of the orchestrator's main thread under the fetcher in a
 * perf profile of a chain, issue 14 round H).
 */
class CallAbort extends EventEmitter {
  /** Whether it aborted. */
  aborted = false;
  /** Whether it aborted because the deadline passed. */
  timedOut = false;

  /** The caller's signal aborted (an EventTarget listener object). */
  handleEvent(): void {
    this.abort();
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit('abort');
  }
}

/** The call's deadline passed (a timer callback that takes its abort, so that no closure is made per call). */
function expire(abort: CallAbort): void {
  abort.timedOut = true;
  abort.abort();
}

/**
 * How an error message names a call: its method and URL without secrets (`POST
 * http://host:port/api/execution/execute`; see `redactUrl` of `@mpd/contract`). Made only when a call
 * fails: the URL's redaction (a RegExp replace and two concatenations) cost every call of the
 * orchestrator's one per module before, though only failures read it (issue 14, round N).
 */
function callName(args: { method: string; path: string }): string {
  return `${args.method} ${redactUrl(args.path)}`;
}

/**
 * The answer's body as text, reading at most `limit` bytes: a larger body (by its
 * `Content-Length`, or as it arrives) is dropped unread, and the call fails with `TooLarge`
 * (its message naming the call, `call`, by {@link callName}).
 */
async function readText(
  response: Dispatcher.ResponseData,
  limit: number | undefined,
  call: { method: string; path: string },
): Promise<string> {
  if (limit === undefined) return response.body.text();
  const declared = Number(response.headers['content-length']);
  if (declared > limit) throw tooLarge(response, `${declared} bytes`, limit, call);
  // Within the limit by its Content-Length: undici keeps a body to its Content-Length.
  if (Number.isInteger(declared)) return response.body.text();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(response, 'larger', limit, call);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/** Drops an answer larger than `limit` unread: the error that says so. */
function tooLarge(
  response: Dispatcher.ResponseData,
  size: string,
  limit: number,
  call: { method: string; path: string },
): MpdClientError {
  response.body.destroy();
  return new MpdClientError(
    'TooLarge',
    `${callName(call)}: the answer is ${size}, over the ${limit} bytes this call reads`,
  );
}

/** undici's response headers: a value per (lower-case) name, or a list for a repeated one. */
type RawHeaders = Record<string, string | string[] | undefined>;

/**
 * A header name as `Headers` takes one (RFC 9110's `token`): `get` and `has` answer such a name
 * that the answer lacks themselves (null, false); any other name goes to `Headers`, which throws
 * its TypeError.
 */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * An answer's headers (undici's: a value per lower-case name, or a list for a repeated one) as
 * WHATWG `Headers` (an `instanceof Headers`, with every method of `Headers`), made into a real
 * `Headers` only when used for more than `get` and `has`, which read undici's object as `Headers`
 * would (a name in any case; a repeated header's values joined with `, `; a valid name it lacks:
 * null, false; any other name answered by `Headers` itself, with its TypeError). Every other
 * method makes the `Headers` first and answers from it. Filling `Headers` for every answer (`new
 * Headers` and an `append` per header) was 2.8 % of the orchestrator's main thread in a perf
 * profile of a 2,000-module chain (issue 14, round H); making the empty `Headers` an
 * `AnswerHeaders` extended, for every answer, was still 3 % of it in a CPU profile through the
 * CLIs (round V). The orchestrator reads two headers of an execute answer (`Content-Type`,
 * `Mpd-Output`).
 */
class AnswerHeaders {
  #raw: RawHeaders | undefined;
  #headers: Headers | undefined = undefined;

  constructor(raw: RawHeaders) {
    this.#raw = raw;
  }

  /** The `Headers` with every header of the answer in it (made once). */
  #filled(): Headers {
    let headers = this.#headers;
    if (headers !== undefined) return headers;
    headers = new Headers();
    const raw = this.#raw;
    this.#raw = undefined;
    for (const name in raw) {
      const value = raw[name];
      if (Array.isArray(value)) for (const item of value) headers.append(name, item);
      else if (value !== undefined) headers.append(name, value);
    }
    return (this.#headers = headers);
  }

  get(name: string): string | null {
    const raw = this.#raw;
    if (raw !== undefined) {
      const key = name.toLowerCase();
      // Own names only: `raw` is a plain object, whose prototype's names (`constructor`, `__proto__`) are no headers.
      const value = Object.hasOwn(raw, key) ? raw[key] : undefined;
      if (value !== undefined) return Array.isArray(value) ? value.join(', ') : value;
      if (HEADER_NAME.test(name)) return null;
    }
    return this.#filled().get(name);
  }

  has(name: string): boolean {
    const raw = this.#raw;
    if (raw !== undefined) {
      const key = name.toLowerCase();
      if (Object.hasOwn(raw, key) && raw[key] !== undefined) return true;
      if (HEADER_NAME.test(name)) return false;
    }
    return this.#filled().has(name);
  }

  append(name: string, value: string): void {
    this.#filled().append(name, value);
  }

  delete(name: string): void {
    this.#filled().delete(name);
  }

  set(name: string, value: string): void {
    this.#filled().set(name, value);
  }

  getSetCookie(): string[] {
    return this.#filled().getSetCookie();
  }

  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    // `parent` is this object, as `Headers` gives itself.
    this.#filled().forEach((value, key) => callback.call(thisArg, value, key, this as unknown as Headers));
  }

  keys(): ReturnType<Headers['keys']> {
    return this.#filled().keys();
  }

  values(): ReturnType<Headers['values']> {
    return this.#filled().values();
  }

  entries(): ReturnType<Headers['entries']> {
    return this.#filled().entries();
  }

  [Symbol.iterator](): ReturnType<Headers['entries']> {
    return this.#filled().entries();
  }

  /** What `console.log` and `util.inspect` show: the filled `Headers`, as for any `Headers`. */
  [Symbol.for('nodejs.util.inspect.custom')](
    _depth: number,
    options: object,
    inspect: (value: unknown, options: object) => string,
  ): string {
    return inspect(this.#filled(), options);
  }
}
// An `instanceof Headers`, without a `Headers` made per answer (see AnswerHeaders): every method
// of `Headers.prototype` is one of its own above. It is no real `Headers` for `Headers.prototype`'s
// own methods, though: `Headers.prototype.get.call(answer.headers, name)` (any of them called so)
// throws a TypeError ("Cannot read private member #headersList", Node 20's undici); no caller of ours does.
Object.setPrototypeOf(AnswerHeaders.prototype, Headers.prototype);

/** Where a call goes, as undici's dispatcher takes it. */
interface Target {
  origin: string;
  /** The path and query. */
  path: string;
}

/** Targets of URLs called before (bounded: emptied when full); the same URLs are called again and again. */
const targets = new Map<string, Target>();
const MAX_TARGETS = 256;

/**
 * The `origin` and `path` of an http(s) `url`, as undici's top-level `request` makes them from a
 * URL (`new URL`; the path with its query), parsed once per URL: undici parsed the worker's
 * execute URL on every call (2–3 µs). Undefined for a URL undici would refuse (it is then given
 * to undici as it is, to fail as before).
 */
/** A call's URL that is not an http(s) URL (a `TypeError`, no cause: see its one throw). */
class UnusableUrl extends TypeError {}

function targetOf(url: string): Target | undefined {
  let target = targets.get(url);
  if (target !== undefined) return target;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return undefined;
  target = { origin: parsed.origin, path: parsed.search ? `${parsed.pathname}${parsed.search}` : parsed.pathname };
  if (targets.size >= MAX_TARGETS) targets.clear();
  targets.set(url, target);
  return target;
}

/** TLS failures: a certificate that does not verify, a handshake the server refused. */
const TLS_ERROR = /CERT|SSL|TLS|UNABLE_TO_|SIGNATURE|INVALID_PURPOSE/;

/**
 * Whether a network error code (an {@link MpdClientError.errno}) is a TLS failure: a server
 * certificate that does not verify or does not name the host, or a handshake that failed.
 */
export function isTlsFailure(errno: string | undefined): boolean {
  return errno !== undefined && TLS_ERROR.test(errno);
}

/** A network error as Node and undici raise it. */
export interface NetworkFailure {
  code?: string;
  message?: string;
  /** The system call that failed (`connect`, `getaddrinfo`, `read`, `write`), for Node's system errors. */
  syscall?: string;
  /** undici's `SocketError`: what the socket saw before it closed. */
  socket?: { bytesRead?: number };
}

/**
 * Errors raised before any connection existed (undici's own, or system ones without a `syscall`,
 * or from `connect` or `getaddrinfo`): `EHOSTUNREACH` and `ENETUNREACH` also come from `read`
 * on an established connection (a route lost mid-call), after the request may have been served.
 */
const NOT_CONNECTED = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  ADDRESS_REFUSED,
]);

/**
 * `Unreachable` only when the failure proves that no request reached the server (no connection
 * was made, or the TLS handshake failed where the client saw it: the request was not served;
 * and, as before, a failure without an error code: Node's and undici's failures on a connection
 * all carry one), `ConnectionLost` for every other failure on a connection, reset or closed
 * before the answer was complete (the server may have acted on the request). An https
 * connection the server closes before sending a byte is `ConnectionLost` too, although that is
 * how a TLS 1.3 server ends a handshake it refuses (no client certificate, or one it does not
 * trust: the client took the session as established and sent the request): a server that read
 * the request, acted on it and closed (restarted, crashed) looks the same from here, and a
 * caller that took it for "not served" would send a second request for what the first one did
 * (round I review: a worker behind mutual TLS took its own registration, served by a restarted
 * orchestrator, for another process's). The message says which it may be ({@link describeFailure}).
 * The codes of `NOT_CONNECTED` prove it only without a `syscall` or from `connect` or
 * `getaddrinfo`: `EHOSTUNREACH` from `read` is a route lost on an established connection.
 * (Exported for its unit test; not part of the package's API.)
 */
export function transportCode(reason: NetworkFailure | undefined): 'Unreachable' | 'ConnectionLost' {
  const code = reason?.code;
  if (code === undefined) return 'Unreachable';
  if (isTlsFailure(code)) return 'Unreachable';
  const syscall = reason?.syscall;
  if (syscall === 'connect' || syscall === 'getaddrinfo') return 'Unreachable';
  if (syscall === undefined && NOT_CONNECTED.has(code)) return 'Unreachable';
  return 'ConnectionLost';
}

/**
 * Why a call got no answer: the error code (`ECONNREFUSED`), with the reason spelled out for
 * TLS failures, and a hint when an https server hung up without a word (under TLS 1.3 that is
 * how a server that requires a client certificate refuses a client that has none, or one it
 * does not trust; it is also what a server that closed after reading the request looks like).
 */
function describeFailure(
  reason: NetworkFailure | undefined,
  error: unknown,
  url: string,
  options: ClientOptions,
): string {
  const code = reason?.code;
  if (reason?.message && (isTlsFailure(code) || code === ADDRESS_REFUSED)) return `${code}: ${reason.message}`;
  if (code === 'UND_ERR_SOCKET' && /^https:/i.test(url) && (reason?.socket?.bytesRead ?? 0) === 0) {
    return options.tls?.cert === undefined
      ? `${code} (the server closed the connection before answering: it stopped or restarted, or, over https, it may require a client certificate: tls.cert and tls.key)`
      : `${code} (the server closed the connection before answering: it stopped or restarted, or, over https, it may not trust the client certificate: its CA)`;
  }
  return code ?? reason?.message ?? (error as Error).message;
}
