/**
 * A worker endpoint's rule and check, without zod or the contract's schemas: `@mpd/contract/endpoint-origin`,
 * for the worker's and the orchestrator's CLIs, which check `--endpoint` and `--allow-endpoint`
 * before they load any server code (round R). The contract's schemas use the same two.
 */
/** The rule of a worker endpoint, as validation answers name it. */
export const WORKER_ENDPOINT_RULE =
  'must be scheme://host:port (http or https, port optional, path empty or /) such as http://worker1:9000, without user name or password, path, query or fragment';

/**
 * `scheme://host:port` of an `http://` or `https://` base URL, or undefined when it is no such
 * URL. Only an origin: no user name or password (`http://user@host`), path other than `/`,
 * query or fragment, so the orchestrator, which appends its routes (`/api/execution/execute`),
 * chooses every path it calls; a registrant chooses a host and a port, nothing else (issue 11,
 * case 5). Checked on the text as given, not only as parsed: WHATWG URL parsing drops an empty
 * `?`, `#` or `@`, turns `\` into `/` and resolves `/.`, all of which must be refused too.
 */
export function endpointOrigin(value: string): string | undefined {
  // Anything after the authority but a single `/`; userinfo (`@`); backslashes and whitespace,
  // which the URL parser would quietly turn into `/` or drop.
  if (!/^https?:\/\/[^/?#@\\\s]+\/?$/i.test(value)) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    return undefined;
  }
  return url.origin;
}
