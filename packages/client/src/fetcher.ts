import { parseTimeSpan } from '@mpd/contract';
import { type ApiFetcher, type ApiFetcherArgs, isZodType } from '@ts-rest/core';
import { Agent, fetch } from 'undici';
import {
  type ClientOptions,
  DEFAULT_EXECUTE_MARGIN_MS,
  DEFAULT_MODULE_TIMEOUT_MS,
  DEFAULT_TIMEOUT_MS,
} from './client-options.js';
import { MpdClientError } from './errors.js';

const EXECUTE_PATH = '/api/execution/execute';

/**
 * The options of the fetcher's undici `Agent`: undici's own header and body timeouts
 * (300 s by default) are off (0), so only the call's own deadline bounds it; `tls` becomes
 * the `connect` options of https connections (CA, client certificate, verification).
 * Exported for tests; not part of the package's public API.
 */
export function dispatcherOptions(timeoutMs: number, tls?: ClientOptions['tls']): Agent.Options {
  return {
    headersTimeout: 0,
    bodyTimeout: 0,
    connectTimeout: Math.min(timeoutMs, 10_000),
    keepAliveTimeout: 10_000,
    ...(tls ? { connect: connectOptions(tls) } : {}),
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
 */
export function createFetcher(options: ClientOptions): { api: ApiFetcher; close: () => Promise<void> } {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const executeMarginMs = options.executeMarginMs ?? DEFAULT_EXECUTE_MARGIN_MS;
  const dispatcher = new Agent(dispatcherOptions(timeoutMs, options.tls));

  const deadlineFor = (args: ApiFetcherArgs): number => {
    if (args.route.path !== EXECUTE_PATH) return timeoutMs;
    const requested = (args.rawBody as { timeout?: unknown } | undefined)?.timeout;
    const moduleTimeout = typeof requested === 'string' ? parseTimeSpan(requested) : undefined;
    return (moduleTimeout ?? DEFAULT_MODULE_TIMEOUT_MS) + executeMarginMs;
  };

  const api: ApiFetcher = async (args) => {
    const deadline = deadlineFor(args);
    const callerSignal = args.fetchOptions?.signal ?? undefined;
    const timeoutSignal = AbortSignal.timeout(deadline);
    const signal = callerSignal ? AbortSignal.any([callerSignal, timeoutSignal]) : timeoutSignal;
    const where = `${args.method} ${args.path}`;
    try {
      const response = await fetch(args.path, {
        method: args.method,
        headers: args.headers,
        body: args.body as string | undefined | null,
        signal,
        dispatcher,
      });
      const contentType = response.headers.get('content-type') ?? '';
      let body: unknown;
      if (contentType.includes('json')) {
        const text = await response.text();
        body = text === '' ? undefined : JSON.parse(text);
      } else {
        body = await response.text();
      }
      const schema = args.route.responses[response.status];
      if ((args.validateResponse ?? false) && isZodType(schema)) body = schema.parse(body);
      return { status: response.status, body, headers: response.headers as unknown as Headers };
    } catch (error) {
      if (callerSignal?.aborted) {
        throw new MpdClientError('Aborted', `${where}: aborted by the caller`, { cause: error });
      }
      if (timeoutSignal.aborted) {
        throw new MpdClientError('Timeout', `${where}: no answer within ${deadline} ms`, { cause: error });
      }
      if (error instanceof SyntaxError || (error as { name?: string }).name === 'ZodError') throw error;
      const reason = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new MpdClientError('Unreachable', `${where}: ${describeFailure(reason, error, args.path, options)}`, {
        cause: error,
      });
    }
  };

  return { api, close: () => dispatcher.close() };
}

/** TLS failures: a certificate that does not verify, a handshake the server refused. */
const TLS_ERROR = /CERT|SSL|TLS|UNABLE_TO_|SIGNATURE|INVALID_PURPOSE/;

/**
 * Why a call got no answer: the error code (`ECONNREFUSED`), with the reason spelled out for
 * TLS failures, and a hint when an https server hung up without a word (under TLS 1.3 that is
 * how a server that requires a client certificate refuses a client that has none).
 */
function describeFailure(
  reason: { code?: string; message?: string } | undefined,
  error: unknown,
  url: string,
  options: ClientOptions,
): string {
  const code = reason?.code;
  if (code && reason?.message && TLS_ERROR.test(code)) return `${code}: ${reason.message}`;
  if (code === 'UND_ERR_SOCKET' && /^https:/i.test(url) && options.tls?.cert === undefined) {
    return `${code} (the server closed the connection; over https it may require a client certificate: tls.cert and tls.key)`;
  }
  return code ?? reason?.message ?? (error as Error).message;
}
