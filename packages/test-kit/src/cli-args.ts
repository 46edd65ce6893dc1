/**
 * The CLIs' arguments as the end-to-end tests run them: on 127.0.0.1, with short heartbeats
 * (every 0.5 s, Offline after 3 s without one), so that lost workers are noticed quickly. Not
 * shorter: a worker fences itself a quarter of the timeout before its lease ends, and on a
 * machine running two copies of the suite an event loop (a worker relaying a 70 MB answer, say)
 * stalls for more than a second; with 1 s workers were declared Offline while they worked.
 */
export function orchestratorArgs(port: number | string, ...extra: string[]): string[] {
  return [
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--heartbeat-interval',
    '0.5',
    '--heartbeat-timeout',
    '3',
    ...extra,
  ];
}

/** A worker on a free port of 127.0.0.1, registering with `orchestratorUrl` as `id`. */
export function workerArgs(orchestratorUrl: string, id: string, ...extra: string[]): string[] {
  return ['--port', '0', '--host', '127.0.0.1', '--orchestrator', orchestratorUrl, '--id', id, ...extra];
}
