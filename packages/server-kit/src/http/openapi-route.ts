import type { RequestHandler } from 'express';

/**
 * `GET /api/openapi.json`: the server's OpenAPI document (built on the first request), with
 * a `servers` entry naming the address it was fetched from, so that Postman or Insomnia can
 * call the API as soon as they import it.
 */
export function openApiRoute(build: () => object): RequestHandler {
  let document: object | undefined;
  return (req, res) => {
    document ??= build();
    res.json({ ...document, servers: [{ url: `${req.protocol}://${req.get('host') ?? 'localhost'}` }] });
  };
}
