/**
 * Reading a route's JSON body: what every client of the API sends read by hand, everything else
 * by body-parser (`express.json()`).
 */
import { Readable } from 'node:stream';
import express, { type Request, type RequestHandler } from 'express';
import { requireJsonBody } from './security.js';

/** The request as body-parser leaves it: the parsed body, and its flag saying it was read. */
type ReadRequest = Request & { _body?: boolean };

/**
 * Route middleware reading a JSON request body into `req.body`, up to `limitBytes` (parsed once
 * from `limit`, bytes-package syntax: `1mb`).
 *
 * A body as the orchestrator and `@mpd/client` send it — `Content-Type: application/json` (or
 * with `; charset=utf-8`), no `Content-Encoding`, a `Content-Length` within the limit — is read
 * here: its bytes gathered, decoded as UTF-8 and given to `JSON.parse` when they begin with `{`
 * or `[`. Every other request (another type: 415 `UnsupportedMediaType` as {@link requireJsonBody}
 * says; a compressed or chunked body, a charset, one over the limit) goes to body-parser, and
 * so does a body read here that does not parse or begins otherwise (it is replayed to
 * body-parser from its bytes), so every answer but the plain case's is body-parser's, word for word: 400 for malformed JSON or a body that is
 * neither an object nor an array (body-parser's `strict`), 413 over the limit, 415 for a
 * charset other than UTF-8; an empty body is `{}`, whitespace or a BOM before the JSON is
 * skipped.
 *
 * Why by hand (issue 14, round H): on the worker's `execute` route body-parser cost 2–4 µs of
 * CPU per request more than this (its content-type parse, its charset decoder, raw-body's five
 * listeners and their removal; `tsx bench/route-split.ts`, the worker's app plumbing 98 → 95 µs
 * per request, 6 runs each alternating), and one express layer per route less.
 */
export function jsonBody(limit: string, limitBytes: number): RequestHandler {
  const bodyParser = express.json({ limit, type: () => true });
  // requireJsonBody has checked the type: body-parser's own type-is check is skipped (`type`).
  const slowly: RequestHandler = (req, res, next) =>
    requireJsonBody(req, res, (error?: unknown) => (error ? next(error) : bodyParser(req, res, next)));
  return (req: ReadRequest, res, next) => {
    const { headers } = req;
    const type = headers['content-type'];
    const length = Number(headers['content-length']);
    if (
      req._body ||
      (type !== 'application/json' && type !== 'application/json; charset=utf-8') ||
      headers['content-encoding'] !== undefined ||
      headers['transfer-encoding'] !== undefined ||
      !(length <= limitBytes)
    ) {
      slowly(req, res, next);
      return;
    }
    req._body = true;
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer): void => void chunks.push(chunk);
    const onEnd = (): void => {
      req.off('data', onData);
      req.off('close', onClose);
      const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      const body = parsed(bytes);
      if (body !== undefined) {
        req.body = body;
        next();
        return;
      }
      // Not JSON, or not an object or array: body-parser words the 400 from the same bytes.
      const replay = Object.assign(Readable.from([bytes], { objectMode: false }), { headers }) as Readable &
        ReadRequest;
      bodyParser(replay, res, (error?: unknown) => {
        if (error) return next(error);
        req.body = replay.body;
        next();
      });
    };
    // The client went away before its body ended (the request is destroyed before its end):
    // body-parser's 400 `request aborted`, answered to no one.
    const onClose = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      next(Object.assign(new Error('request aborted'), { status: 400, expose: true, type: 'request.aborted' }));
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('close', onClose);
  };
}

/**
 * `bytes` as JSON, when they are UTF-8 JSON text of an object or an array, starting with its
 * `{` or `[`; otherwise undefined, for body-parser to read again from the bytes (it also takes
 * whitespace or a BOM first, and an empty body as `{}`).
 */
function parsed(bytes: Buffer): unknown {
  const text = bytes.toString('utf8');
  const first = text.charCodeAt(0);
  if (first !== 0x7b && first !== 0x5b) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
