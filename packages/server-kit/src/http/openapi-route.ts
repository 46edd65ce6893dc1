import type { RequestHandler } from 'express';

/**
 * `GET /api/openapi.json`: the server's OpenAPI document (built on the first request), with
 * a `servers` entry naming the address it was fetched from, so that Postman or Insomnia can
 * call the API as soon as they import it.
 *
 * `build` may be async: the servers load the generator (`@mpd/contract/openapi`, with
 * `@ts-rest/open-api` and `@anatine/zod-openapi`) with `import()` on the first request, not at
 * their start (round Z, Z3: ~35 ms of every start). A build that fails is the request's failure
 * (`next(error)`: the app's 500 with the contract's error body) and is tried again next time.
 */
export function openApiRoute(build: () => object | Promise<object>): RequestHandler {
  let document: Promise<object> | undefined;
  return (req, res, next) => {
    document ??= Promise.resolve()
      .then(build)
      .catch((error: unknown) => {
        document = undefined;
        throw error;
      });
    document.then(
      (built) => res.json({ ...built, servers: [{ url: `${req.protocol}://${req.get('host') ?? 'localhost'}` }] }),
      next,
    );
  };
}
