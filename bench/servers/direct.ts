/**
 * The dispatch benchmark's baseline: the same execute calls, made directly to the same worker
 * processes with the same client (`@mpd/client`, undici) and the same concurrency, without
 * the orchestrator's scheduler, registry or bookkeeping. A wide pipeline keeps every worker's
 * slots busy (one loop per slot takes the next module as soon as its previous one answered); a
 * chain sends one module at a time, alternating workers, with the previous module's result as
 * its dependency result, as the orchestrator does.
 */
import { randomBytes } from 'node:crypto';
import { createWorkerClient } from '@mpd/client';
import { formatTimeSpan } from '@mpd/contract';
import { serveIpc } from '../lib/ipc.js';
import { moduleName } from '../lib/dag.js';

interface DirectRun {
  workers: { url: string; token: string; slots: number }[];
  shape: 'wide' | 'chain';
  size: number;
}

/** Per call, µs after the run started: when the call could go, when `run` started on the worker, when the answer was in. */
export interface DirectTimings {
  makespanMs: number;
  calls: { ready: number; workerStart: number; answered: number }[];
}

async function run({ workers, shape, size }: DirectRun): Promise<DirectTimings> {
  const clients = workers.map((worker) =>
    createWorkerClient({ baseUrl: worker.url, headers: { authorization: `Bearer ${worker.token}` } }),
  );
  const runId = `direct-${randomBytes(4).toString('hex')}`;
  const start = process.hrtime.bigint();
  const us = (time: bigint): number => Number(time - start) / 1_000;
  const calls: DirectTimings['calls'] = [];

  const execute = async (clientIndex: number, index: number, dependencyResults: Record<string, string>) => {
    const ready = process.hrtime.bigint();
    const response = await clients[clientIndex]!.execution.execute({
      body: {
        executionId: `${runId}.${moduleName(index)}.1`,
        moduleTypeName: moduleName(index),
        serializedModule: JSON.stringify({ sleepMs: 0 }),
        dependencyResults,
        environmentVariables: {},
        timeout: formatTimeSpan(30 * 60_000),
        timestamp: new Date().toISOString(),
      },
    });
    const answered = process.hrtime.bigint();
    if (response.status !== 200) throw new Error(`execute ${moduleName(index)} answered ${response.status}`);
    const serialized = (response.body as { serializedResult: string }).serializedResult;
    const { t } = JSON.parse(serialized) as { t: string };
    calls[index] = { ready: us(ready), workerStart: us(BigInt(t)), answered: us(answered) };
    return serialized;
  };

  if (shape === 'chain') {
    let previous: string | undefined;
    for (let index = 0; index < size; index++) {
      const dependencyResults: Record<string, string> =
        previous === undefined ? {} : { [moduleName(index - 1)]: previous };
      previous = await execute(index % clients.length, index, dependencyResults);
    }
  } else {
    let next = 0;
    const loops = workers.flatMap((worker, clientIndex) =>
      Array.from({ length: worker.slots }, async () => {
        while (next < size) await execute(clientIndex, next++, {});
      }),
    );
    await Promise.all(loops);
  }
  const makespanMs = Number(process.hrtime.bigint() - start) / 1e6;
  await Promise.all(clients.map((client) => client.close()));
  return { makespanMs, calls };
}

serveIpc({ run: (payload: DirectRun) => run(payload) });
process.stdout.write('direct caller listening on http://127.0.0.1/ (ipc)\n');
process.on('SIGTERM', () => process.exit(0));
