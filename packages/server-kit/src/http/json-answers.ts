/** express's `res.json` for an API's answers: the same bytes and headers, less work per answer. */
import type express from 'express';

/** What express's `res.json` sets when no content type was set (`res.set` adds the charset, `res.send` checks it again). */
const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** Statuses whose answer express's `res.send` strips or empties: left to express. */
const NO_BODY_STATUSES = new Set([204, 205, 304]);

/**
 * Gives `app`'s responses a `json(body)` that answers as express 4's `res.json` does — the body
 * `JSON.stringify(body)`, `Content-Type: application/json; charset=utf-8`, `Content-Length` —
 * without express's work per answer: `res.set` looking the type's charset up in `mime`, then
 * `res.send` parsing the content type again to set that charset (`content-type`'s `parse` and
 * `format`), its ETag and freshness checks (ETag is off in these apps; freshness is for GET and
 * HEAD). ts-rest answers every JSON route with `res.status(code).json(body)`
 * (`@ts-rest/express`), so this was on each execute, heartbeat and output answer (issue 14,
 * round I: express's own calls 2–3 % of a loaded worker's main thread).
 *
 * Express's own `json` answers whatever this one does not take as it is: a GET or HEAD (its
 * freshness, 304), a content type already set, status 204, 205 or 304, an app with an ETag
 * function or a `json replacer`, `json spaces` or `json escape` setting, a body that is not JSON
 * (`undefined`), the deprecated two-argument form.
 */
export function answerJsonDirectly(app: express.Express): void {
  const response = app.response as express.Response;
  const expressJson = response.json;
  const settings = app.settings as Record<string, unknown>;
  response.json = function json(this: express.Response, body?: unknown): express.Response {
    const method = this.req.method;
    if (
      arguments.length !== 1 ||
      method === 'GET' ||
      method === 'HEAD' ||
      NO_BODY_STATUSES.has(this.statusCode) ||
      this.getHeader('Content-Type') !== undefined ||
      typeof settings['etag fn'] === 'function' ||
      settings['json replacer'] !== undefined ||
      settings['json spaces'] !== undefined ||
      settings['json escape'] !== undefined
    )
      return expressJson.apply(this, arguments as unknown as [unknown]);
    const text = JSON.stringify(body) as string | undefined;
    if (text === undefined) return expressJson.call(this, body);
    this.setHeader('Content-Type', JSON_CONTENT_TYPE);
    this.setHeader('Content-Length', String(Buffer.byteLength(text, 'utf8')));
    this.end(text, 'utf8');
    return this;
  };
}
