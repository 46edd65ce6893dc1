import type { RequestHandler, Response } from 'express';
import helmet from 'helmet';

/**
 * helmet's security headers as a JSON API needs them (the OWASP REST Security Cheat Sheet's
 * set): `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'` (nothing an
 * answer holds may load or run anything, or be framed), `X-Frame-Options: DENY`,
 * `X-Content-Type-Options: nosniff`, `Strict-Transport-Security`, `Referrer-Policy:
 * no-referrer`, `Cross-Origin-Resource-Policy: same-origin`, and no `X-Powered-By`. helmet's
 * defaults also send headers that only mean something on HTML pages (a long page CSP, opener
 * and agent-cluster isolation, DNS prefetch, IE download options, Flash policies, the
 * deprecated XSS filter): about 700 bytes on every answer, a third of a heartbeat's cost for a
 * client to parse, protecting nothing here.
 *
 * These options make the same headers for every request, so helmet runs once, here, and each
 * request gets what it set and removed: helmet's chain of seven middleware per request was about
 * 1 µs of a heartbeat's CPU (issue 14, benchmark 1). The answer node's parser makes before any
 * app sees a request (`listen.ts`, a 400 for malformed framing) carries the same set
 * ({@link apiSecurityHeaderPairs}).
 * @throws Error if helmet, so configured, does anything else to an answer (it would then depend on the request)
 */
export function apiSecurityHeaders(): RequestHandler {
  const { set, removed } = helmetOnce();
  return (_req, res, next) => {
    for (const [name, value] of set) res.setHeader(name, value);
    for (const name of removed) res.removeHeader(name);
    next();
  };
}

/**
 * The headers {@link apiSecurityHeaders} sets on every answer, as `[name, value]` pairs (helmet's
 * names: `Content-Security-Policy`, `X-Frame-Options`, …), for an answer written without express:
 * the `clientError` answer of `listen.ts`.
 * @throws Error as {@link apiSecurityHeaders}
 */
export function apiSecurityHeaderPairs(): readonly (readonly [string, string])[] {
  return helmetOnce().set;
}

/** What helmet, configured for a JSON API, sets and removes on an answer; made at the first call. */
let made: { set: [string, string][]; removed: string[] } | undefined;

function helmetOnce(): { set: [string, string][]; removed: string[] } {
  if (made) return made;
  const set: [string, string][] = [];
  const removed: string[] = [];
  const recorder = {
    setHeader: (name: string, value: string) => void set.push([name, value]),
    removeHeader: (name: string) => void removed.push(name),
  };
  let failure: unknown = 'helmet did not call next';
  helmet({
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    frameguard: { action: 'deny' },
    crossOriginOpenerPolicy: false,
    originAgentCluster: false,
    xDnsPrefetchControl: false,
    xDownloadOptions: false,
    xPermittedCrossDomainPolicies: false,
    xXssProtection: false,
  })({} as never, recorder as unknown as Response, (error?: unknown) => (failure = error));
  if (failure !== undefined) throw new Error(`helmet's security headers could not be made once: ${String(failure)}`);
  return (made = { set, removed });
}
