/**
 * The CLIs' arguments as the end-to-end tests run them: on 127.0.0.1, with short heartbeats
 * (every 0.2 s, Offline after 1 s without one), so that lost workers are noticed quickly.
 */
export function orchestratorArgs(port: number | string, ...extra: string[]): string[] {
  return [
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--heartbeat-interval',
    '0.2',
    '--heartbeat-timeout',
    '1',
    ...extra,
  ];
}

/** A worker on a free port of 127.0.0.1, registering with `orchestratorUrl` as `id`. */
export function workerArgs(orchestratorUrl: string, id: string, ...extra: string[]): string[] {
  return ['--port', '0', '--host', '127.0.0.1', '--orchestrator', orchestratorUrl, '--id', id, ...extra];
}
