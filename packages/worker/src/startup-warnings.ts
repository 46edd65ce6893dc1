/**
 * Whether `host` (a listen address) is reachable from this machine only: `127.x.x.x`, `::1`
 * (bracketed or not), `localhost`, and IPv4-mapped `::ffff:127.x.x.x`.
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

/** What the worker warns about at start; never any token value. */
export function workerStartupWarnings(settings: { host: string; tls: boolean; token: boolean }): string[] {
  if (isLoopbackHost(settings.host)) return [];
  const warnings: string[] = [];
  if (!settings.tls)
    warnings.push(
      'serving plain HTTP on a non-loopback address: tokens and module data cross the network unencrypted; give --tls-cert and --tls-key (MPD_TLS_CERT, MPD_TLS_KEY)',
    );
  if (!settings.token)
    warnings.push(
      'no token on a non-loopback address (no --join-token, no --token): anyone who can reach the worker can run modules on it; set --join-token (MPD_JOIN_TOKEN) or --token (MPD_WORKER_TOKEN)',
    );
  return warnings;
}
