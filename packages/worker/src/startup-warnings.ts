import { startupWarnings } from '@mpd/server-kit';

/** What the worker warns about at start (see `startupWarnings` of `@mpd/server-kit`); never any token value. */
export function workerStartupWarnings(settings: { host: string; tls: boolean; token: boolean }): string[] {
  return startupWarnings(
    settings,
    settings.token
      ? []
      : [
          'no token on a non-loopback address (no --join-token, no --token): anyone who can reach the worker can run modules on it; set --join-token (MPD_JOIN_TOKEN) or --token (MPD_WORKER_TOKEN)',
        ],
  );
}
