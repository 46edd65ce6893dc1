/**
 * The setups the kept-outcome and cancel-stop tests share (`in-process/kept-outcomes.spec.ts`,
 * `in-process/cancel-stops.spec.ts`): a module that records where it ran, a worker `w-one`
 * behind a gateway front, and the front's way of losing the first execute's answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { defineModule, definePipeline, type Pipeline } from '@mpd/pipeline';
import type { RunningWorker, WorkerOptions } from '@mpd/worker';
import type { Cluster } from './cluster.js';
import { type ExecuteRoute, type GatewayFrontOptions, startGatewayFront } from './gateway-front.js';

/**
 * A pipeline `name` of one module, `work`, that appends the id of the worker running it to
 * `starts` (a pipeline defined in code runs in the test's process) and returns
 * `{ workerId, ...extra }`.
 */
export function recordingPipeline(
  name: string,
  extra: Record<string, unknown> = {},
): { pipeline: Pipeline; starts: string[] } {
  const starts: string[] = [];
  const work = defineModule({
    name: 'work',
    run: (ctx) => {
      starts.push(ctx.workerId);
      return { workerId: ctx.workerId, ...extra };
    },
  });
  return { pipeline: definePipeline({ name, modules: [work] }), starts };
}

/**
 * Starts worker `w-one` (on `cluster`, with `worker`'s options) behind a gateway front whose
 * execute calls go to `route` (see {@link startGatewayFront}; its close goes to `cleanups`), and
 * waits until it registered. Answers the worker; the orchestrator calls it at the front's URL.
 */
export async function startWorkerBehindFront(
  cluster: Cluster,
  cleanups: Array<() => Promise<unknown>>,
  route: ExecuteRoute,
  worker: WorkerOptions,
  front?: GatewayFrontOptions,
): Promise<RunningWorker> {
  let workerUrl = '';
  const frontUrl = await startGatewayFront(cleanups, () => workerUrl, route, front);
  const one = await cluster.startWorker({ id: 'w-one', ...worker, endpoint: frontUrl });
  workerUrl = one.url;
  await one.link!.registered();
  return one;
}

/**
 * An {@link ExecuteRoute} that passes the first execute call on to the worker, drops the
 * worker's answer, and answers its caller a bare 503 (a gateway's "no healthy upstream", its
 * upstream timeout run out, say) once `before(answerEnded)` resolved (`answerEnded` resolves when
 * the worker's answer has come whole); then runs `after`. Later calls are passed on.
 */
export function bare503AfterFirst(
  before: (answerEnded: Promise<void>) => Promise<unknown>,
  after: () => Promise<unknown> = async () => undefined,
): ExecuteRoute {
  return (call: number, _req: IncomingMessage, res: ServerResponse, forward) => {
    if (call > 1) return forward();
    let ended!: () => void;
    const answerEnded = new Promise<void>((resolve) => (ended = resolve));
    forward((answer) => {
      answer.on('end', ended);
      answer.resume();
    });
    void (async () => {
      await before(answerEnded);
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('no healthy upstream');
      await after();
    })();
  };
}
