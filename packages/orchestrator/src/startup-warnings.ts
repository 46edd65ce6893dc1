import { startupWarnings } from '@mpd/server-kit';

/** What the orchestrator warns about at start (see `startupWarnings` of `@mpd/server-kit`); never any token value. */
export function orchestratorStartupWarnings(settings: {
  host: string;
  tls: boolean;
  joinToken: boolean;
  adminToken: boolean;
}): string[] {
  const tokenWarnings: string[] = [];
  if (!settings.joinToken)
    tokenWarnings.push(
      'no join token on a non-loopback address: anyone who can reach the orchestrator can register workers (and receive modules); set --join-token (MPD_JOIN_TOKEN)',
    );
  if (!settings.adminToken)
    tokenWarnings.push(
      'no admin token on a non-loopback address: anyone who can reach the orchestrator can list, unregister and drain workers; set --admin-token (MPD_ADMIN_TOKEN)',
    );
  return startupWarnings(settings, tokenWarnings);
}
