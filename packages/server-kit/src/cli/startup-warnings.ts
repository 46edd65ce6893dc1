/** The start-up warnings both servers give on a non-loopback address. */

/**
 * Whether `host` (a listen address) is reachable from this machine only: `127.x.x.x`, `::1`
 * (bracketed or not), `localhost` (and `*.localhost`), and IPv4-mapped `::ffff:127.x.x.x`.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '');
  return (
    bare === 'localhost' ||
    bare.endsWith('.localhost') ||
    bare === '::1' ||
    /^127(\.\d{1,3}){3}$/.test(bare) ||
    /^::ffff:127(\.\d{1,3}){3}$/.test(bare)
  );
}

/** The warning of a server without TLS on a non-loopback address. */
export const PLAIN_HTTP_WARNING =
  'serving plain HTTP on a non-loopback address: tokens and module data cross the network unencrypted; give --tls-cert and --tls-key (MPD_TLS_CERT, MPD_TLS_KEY)';

/**
 * What a server warns about at start: nothing on a loopback address; else plain HTTP (without
 * TLS), then `tokenWarnings` (the server's own, about the tokens it lacks). Never a token value.
 */
export function startupWarnings(settings: { host: string; tls: boolean }, tokenWarnings: readonly string[]): string[] {
  if (isLoopbackHost(settings.host)) return [];
  return [...(settings.tls ? [] : [PLAIN_HTTP_WARNING]), ...tokenWarnings];
}
