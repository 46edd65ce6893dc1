/**
 * The one way a URL is shown in a message (an error, a log line, a report): its user name,
 * password, query and fragment masked. Both servers (settings, the artifact store's address,
 * address ranges) and `@mpd/client` (a call's name in its errors, a refused `baseUrl`) show URLs
 * through it, so one rule holds everywhere. This file imports only `limits.ts`: code that must
 * load nothing else (`--artifact-store`'s check before the server loads) takes it as
 * `@mpd/contract/redact-url`, without zod or ts-rest.
 */
import { MASK } from './limits.js';

/** A URL's scheme and `//`, at the start of a text (`http://`, `s3://`). */
const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
/** A URL scheme's characters after its first (a letter): RFC 3986's `ALPHA / DIGIT / "+" / "-" / "."`. */
const SCHEME_TAIL = /[a-z0-9+.-]/i;
/** A letter, which a URL scheme starts with. */
const LETTER = /[a-z]/i;
/**
 * The WHATWG URL standard's special schemes: a parser (`new URL`, undici's) reads `http:` followed
 * by any mix of `/` and `\` (none included, tabs and newlines dropped) as `http://`:
 * `http:/u:pw@h`, `http:\\u:pw@h` and `http:u:pw@h` are `http://u:pw@h/` (review of round N).
 */
const SPECIAL_SCHEMES = new Set(['http', 'https', 'ws', 'wss', 'ftp', 'file']);
/** The longest special scheme's length. */
const SPECIAL_MAX = 5;

/**
 * Where the first URL in `text` starts, or -1: a `scheme://`, or a special scheme (http, https,
 * ws, wss, ftp, file) and its `:` whatever follows. Linear in the text's length: each `:` is
 * found by `indexOf` and the scheme before it walked back over once (a `:` is no scheme
 * character, so no character is walked twice; an unanchored regex, tried at each position, was
 * quadratic: 100,000 characters without `://` took 20 s; review of round L). The scheme is the
 * longest run of scheme characters before the `:` from a letter on (`1a+b://` starts at `a`), as
 * the regex's leftmost match was.
 */
function schemeStart(text: string): number {
  let from = 0;
  for (;;) {
    const colon = text.indexOf(':', from);
    if (colon === -1) return -1;
    let start = colon;
    while (start > 0 && SCHEME_TAIL.test(text[start - 1]!)) start--;
    // The leftmost letter of the run: the scheme starts there (digits, `+`, `-`, `.` may not lead).
    while (start < colon && !LETTER.test(text[start]!)) start++;
    if (start < colon) {
      if (text.startsWith('//', colon + 1)) return start;
      if (colon - start <= SPECIAL_MAX && SPECIAL_SCHEMES.has(text.slice(start, colon).toLowerCase())) return start;
    }
    from = colon + 1;
  }
}

/**
 * A text given as a URL, as a message may show it: its user name and password (`user:pw@`)
 * replaced by `***@`, its query and fragment by `?…` and `#…` (a query may carry a token:
 * `?access_token=…`, a presigned URL's signature). It reads any text, a URL or not (a setting
 * refused as no URL is exactly what an error echoes): the userinfo runs to the LAST `@` (a
 * password may hold an unescaped `@`, `/`, `?` or space), the query from the first `?` or `#`
 * after it; without `scheme://`, from the text's start. It may mask more than a URL parser would
 * (`http://host/a@b` shows as `http://***@b`), never less. Linear in the text's length.
 *
 * Used for every URL a message shows: the servers' settings and the artifact store's address,
 * and `@mpd/client`'s errors, which name a call by its URL (`POST http://host/api/workers/w1/drain?…`:
 * the worker's drain and unregister send its incarnation in the query, which no answer or log
 * line names, README "Security") and a `baseUrl` they refuse (`ftp://u:p/w@host` shows as
 * `ftp://***@host`). Until round N the client had a rule of its own (userinfo only up to the
 * first `/`, `?` or `#`, fragments shown), which echoed a password holding one of those.
 *
 * ```ts
 * redactUrl('http://user:pw@ci.example:8080/?token=abc'); // 'http://***@ci.example:8080/?…'
 * ```
 */
export function redactUrl(text: string): string {
  const scheme = SCHEME.exec(text)?.[0] ?? '';
  let rest = text.slice(scheme.length);
  const at = rest.lastIndexOf('@');
  if (at !== -1) rest = `${MASK}@${rest.slice(at + 1)}`;
  const query = rest.search(/[?#]/);
  if (query !== -1) rest = `${rest.slice(0, query + 1)}…`;
  return scheme + rest;
}

/**
 * A text that may hold a URL (`NAME=postgres://user:pw@db`, a list of origins), as a message
 * may show it: from its first URL to its end read as one URL by {@link redactUrl} (what follows
 * a URL in the same text is masked with it); a text without one as it is. A URL starts at a
 * `scheme://` or at a special scheme's `:` (`http:`, `https:`, `ws:`, `wss:`, `ftp:`, `file:`,
 * any case), which a URL parser reads as a URL whatever mix of `/` and `\` follows
 * (`x=http:\\u:pw@h` shows as `x=***@h`). Linear in the text's length.
 */
export function redactUrlsIn(text: string): string {
  const start = schemeStart(text);
  return start === -1 ? text : text.slice(0, start) + redactUrl(text.slice(start));
}
