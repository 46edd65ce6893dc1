/** The messages between the driver and the bench server processes (over the IPC channel). */

/** A process's CPU time and memory, as `process.cpuUsage()` / `process.memoryUsage()` report them. */
export interface ProcessStats {
  /** User + system CPU time since the process started, µs. */
  cpuMicros: number;
  /** Resident set size now, bytes. */
  rss: number;
  /** Peak resident set size, bytes. */
  maxRss: number;
  heapUsed: number;
}

export function processStats(): ProcessStats {
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  return {
    cpuMicros: cpu.user + cpu.system,
    rss: memory.rss,
    maxRss: process.resourceUsage().maxRSS * 1024,
    heapUsed: memory.heapUsed,
  };
}

/** One request to a bench server and its answer, matched by `id`. */
export interface IpcRequest<T = unknown> {
  id: number;
  type: string;
  payload?: T;
}

export interface IpcAnswer<T = unknown> {
  id: number;
  ok: boolean;
  value?: T;
  error?: string;
}

/** Serves IPC requests in a child process: `handlers[type](payload)` answers `type`. */
export function serveIpc(handlers: Record<string, (payload: never) => unknown>): void {
  process.on('message', (message: IpcRequest) => {
    const handler = handlers[message.type];
    void Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown request ${message.type}`);
        return handler(message.payload as never);
      })
      .then(
        (value) => process.send!({ id: message.id, ok: true, value } satisfies IpcAnswer),
        (error: unknown) =>
          process.send!({
            id: message.id,
            ok: false,
            error: error instanceof Error ? (error.stack ?? error.message) : String(error),
          } satisfies IpcAnswer),
      );
  });
}
