/**
 * Whether a worker endpoint's host is allowed: `allowed` lists host names or addresses, and
 * `*.suffix` patterns (any host ending in `.suffix`). No list: every http(s) endpoint is allowed.
 */
export function endpointAllowed(endpoint: string, allowed: readonly string[] | undefined): boolean {
  if (!allowed || allowed.length === 0) return true;
  let host: string;
  try {
    host = new URL(endpoint).hostname.toLowerCase().replace(/^\[|\]$/g, '');
  } catch {
    return false;
  }
  return allowed.some((pattern) => {
    const wanted = pattern.toLowerCase();
    return wanted.startsWith('*.')
      ? host.endsWith(wanted.slice(1)) && host.length > wanted.length - 1
      : host === wanted;
  });
}
