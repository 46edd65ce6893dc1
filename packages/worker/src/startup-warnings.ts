import { startupWarnings } from '@mpd/server-kit';

/** What {@link workerStartupWarnings} looks at. */
export interface WorkerWarningSettings {
  host: string;
  tls: boolean;
  /** A join token or a token is configured. */
  token: boolean;
  /** Open mode (`--open`). @default false */
  open?: boolean;
  /** The worker registers with an orchestrator (`--orchestrator`). @default false */
  orchestrator?: boolean;
}

/**
 * What the worker warns about at start (see `startupWarnings` of `@mpd/server-kit`); never any
 * token value. On any address: open mode, and a worker that can serve no execute at all (not
 * open, no token, no orchestrator to get a credential from). On a non-loopback address also
 * plain HTTP, and, in open mode, that anyone who reaches it can run modules.
 */
export function workerStartupWarnings(settings: WorkerWarningSettings): string[] {
  const { open = false, orchestrator = false } = settings;
  const everywhere: string[] = [];
  if (open) {
    everywhere.push(
      `open mode (--open): execute and cancel are served without any token${orchestrator ? ' until the first registration gives this worker its credential' : ''}; use it on a trusted network only`,
    );
  } else if (!settings.token && !orchestrator) {
    everywhere.push(
      'no token and no --orchestrator: execute and cancel answer 401 to every call (a worker fails closed); set --token (MPD_WORKER_TOKEN), register with --orchestrator, or start it with --open on a trusted network',
    );
  }
  const nonLoopback = open
    ? [
        'no token on a non-loopback address (open mode, no --join-token, no --token): anyone who can reach the worker can run modules on it; set --join-token (MPD_JOIN_TOKEN) or --token (MPD_WORKER_TOKEN)',
      ]
    : [];
  return [...startupWarnings(settings, nonLoopback), ...everywhere];
}
