/** The body of an execute request, as far as an instant worker reads it. */
export interface InstantExecuteBody {
  executionId: string;
  moduleTypeName: string;
}

/**
 * The part of a worker client the orchestrator's runner calls (`execution.execute`,
 * `execution.cancel`, `close`), typed here without importing `@mpd/client`: cast it where a
 * `WorkerClient` is wanted (`instantWorkerClient() as unknown as WorkerClient`).
 */
export interface InstantWorkerClient {
  execution: {
    execute(request: { body: InstantExecuteBody }): Promise<{
      status: 200;
      body: {
        executionId: string;
        success: true;
        serializedResult: string;
        duration: string;
        startTime: string;
        endTime: string;
        workerId: string;
      };
    }>;
    cancel(request?: unknown): Promise<{ status: 200; body: { success: true } }>;
  };
  close(): Promise<void>;
}

export interface InstantWorkerClientOptions {
  /** Called with each execute request's body as it arrives (to record the order modules started in, say). */
  onExecute?: (body: InstantExecuteBody) => void;
  /** The module's result, as JSON text. @default 'null' */
  serializedResult?: string;
  /** The duration the worker reports (a TimeSpan). @default '00:00:00' */
  duration?: string;
  /** The worker id the answer names. @default 'instant' */
  workerId?: string;
}

/**
 * A fake worker client that answers every execute as the real worker answers a module that
 * succeeded (200 with the contract's success body), on the next turn of the event loop, and
 * every cancel with 200 `{ success: true }`. One client can serve every worker of a run.
 */
export function instantWorkerClient(options: InstantWorkerClientOptions = {}): InstantWorkerClient {
  const { onExecute, serializedResult = 'null', duration = '00:00:00', workerId = 'instant' } = options;
  return {
    execution: {
      execute: async ({ body }) => {
        onExecute?.(body);
        await new Promise((resolve) => setImmediate(resolve));
        const now = new Date().toISOString();
        return {
          status: 200,
          body: {
            executionId: body.executionId,
            success: true,
            serializedResult,
            duration,
            startTime: now,
            endTime: now,
            workerId,
          },
        };
      },
      cancel: async () => ({ status: 200, body: { success: true } }),
    },
    close: async () => undefined,
  };
}
