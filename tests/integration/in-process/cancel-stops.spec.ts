/**
 * A cancel the worker answers 200 is not "it runs nowhere" yet (round R, R6): the execution is
 * being stopped, and its module host's process group may run on for the worker's kill grace (a
 * module that ignores SIGTERM, its child processes). The module may start again only once the old
 * group is gone: once its worker's heartbeats no longer list it (the worker lists an execution
 * until its group is gone) and its outcome is collected, or its execute call answers. Real
 * orchestrator and workers on 127.0.0.1, modules in real module hosts; a plain HTTP front in
 * front of a worker plays the gateway that loses the first execute's answer.
 */
import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { runPipeline } from '@mpd/orchestrator';
import { loadPipelineFile } from '@mpd/pipeline';
import { asTsxLoads } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { running, type StubbornStart } from '../fixtures/stubborn.pipeline.js';
import { capturingLogger } from '../helpers/capturing-logger.js';
import { Cluster, silent } from '../helpers/cluster.js';
import { bare503AfterFirst, recordingPipeline, startWorkerBehindFront } from '../helpers/kept-outcome-run.js';

const PIPELINE = fileURLToPath(new URL('../fixtures/stubborn.pipeline.ts', import.meta.url));

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * A plain HTTP front in front of the orchestrator on 127.0.0.1 (port 0), for one worker: every
 * call passes, but the artifact store's (`/api/artifacts/…`: a large result stored by reference)
 * are held until `release()`. `held` resolves at the first one held. Its close goes to `cleanups`.
 */
async function startStoreHold(target: string): Promise<{ url: string; held: Promise<void>; release: () => void }> {
  let heldOne!: () => void;
  const held = new Promise<void>((resolve) => (heldOne = resolve));
  let released = false;
  const waiting: Array<() => void> = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const pass = (): void => {
        const to = new URL(target);
        const out = httpRequest(
          { host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers },
          (answer) => {
            res.writeHead(answer.statusCode!, answer.headers);
            answer.pipe(res);
          },
        );
        out.on('error', () => res.destroy());
        out.end(Buffer.concat(chunks));
      };
      if (released || !req.url!.startsWith('/api/artifacts')) return pass();
      heldOne();
      waiting.push(pass);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    held,
    release: () => {
      released = true;
      for (const pass of waiting.splice(0)) pass();
    },
  };
}

function readStarts(file: string): StubbornStart[] {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as StubbornStart);
  } catch {
    return [];
  }
}

/**
 * SIGKILL to the process group of `start`'s module host, if its child still runs in it. By the
 * group, read from the child's `/proc` entry: a group id is not reused while a member lives,
 * where the host's own pid may be (it exits at SIGTERM, and is reaped).
 */
function killGroup(start: StubbornStart | undefined): void {
  const [host, child] = start?.pids ?? [];
  try {
    const stat = readFileSync(`/proc/${child}/stat`, 'latin1');
    const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    if (pgrp === host) process.kill(-host, 'SIGKILL');
  } catch {
    // already gone
  }
}

describe('an abandoned attempt whose cancel the worker answered 200 (round R, R6)', () => {
  it('its module ignores SIGTERM: the module starts again elsewhere only once the old process group is gone, however long its stop takes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mpd-cancel-stops-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const ledger = join(dir, 'ledger.jsonl');
    const cluster = new Cluster();
    cleanups.push(() => cluster.close());
    // Whatever happens, the first start's processes end before the cluster closes (its kill
    // grace outlasts the test).
    cleanups.push(async () => killGroup(readStarts(ledger)[0]));
    const { registry } = await cluster.startOrchestrator();
    // A pipeline's fingerprint hashes its modules' code as loaded: vitest transforms the file
    // otherwise than tsx, which the module hosts load it with.
    const pipeline = { ...(await loadPipelineFile(PIPELINE)), ...asTsxLoads(PIPELINE) };
    await startWorkerBehindFront(
      cluster,
      cleanups,
      // The first execute reaches w-one, whose module starts (and runs on); once it has, and
      // w-two is there to take the module, the gateway answers its caller a bare 503: the
      // attempt is lost, and cancelled on w-one (answered 200: it runs there).
      bare503AfterFirst(async () => {
        while (readStarts(ledger).length === 0) await sleep(50);
        const two = await cluster.startWorker({ id: 'w-two', pipeline, slots: 1, isolation: 'process' });
        await two.link!.registered();
      }),
      // Its modules' groups get SIGTERM, which the module's child ignores, and SIGKILL only after
      // a grace longer than the test: the group is gone when the test kills it, not before.
      { pipeline, slots: 1, isolation: 'process', killGraceMs: 600_000 },
    );

    const { logger, lines } = capturingLogger();
    const startedOn: Array<{ workerId: string; at: number }> = [];
    const result = runPipeline({
      pipeline,
      registry,
      logger,
      environmentVariables: { LEDGER: ledger },
      onEvent: (event) =>
        event.type === 'module-started' && startedOn.push({ workerId: event.workerId, at: Date.now() }),
    });
    // The cancel answered 200 (stopping), then ten of w-one's heartbeats (2 s) still listing the
    // execution: its group is stopping. The old code started the module on w-two 250 ms after
    // the 200 (its lost backoff), while the group ran on.
    await expect
      .poll(() => lines.some((line) => line.msg === 'cancel accepted: stopping'), { timeout: 30_000 })
      .toBe(true);
    const [first] = readStarts(ledger);
    let listings = 0;
    const unsubscribe = registry.onChange((event) => {
      if (
        event.type === 'heartbeat' &&
        event.workerId === 'w-one' &&
        registry.executionsOf('w-one')?.includes(first!.executionId)
      )
        listings++;
    });
    await expect.poll(() => listings, { timeout: 30_000 }).toBeGreaterThanOrEqual(10);
    unsubscribe();
    expect(first!.pids.filter(running)).not.toEqual([]); // its child ignored SIGTERM
    expect(startedOn.map((start) => start.workerId)).toEqual(['w-one']);
    expect(readStarts(ledger)).toHaveLength(1);
    // The group's end is the test's: the module may start again only after it.
    const killedAt = Date.now();
    killGroup(first);

    const ended = await result;
    const starts = readStarts(ledger);
    expect(starts.map((start) => start.workerId)).toEqual(['w-one', 'w-two']);
    // When the second start began, no process of the first was left: it never ran beside it.
    expect(starts[1]!.alive).toEqual([]);
    expect(startedOn.map((start) => start.workerId)).toEqual(['w-one', 'w-two']);
    expect(startedOn[1]!.at).toBeGreaterThanOrEqual(killedAt);
    expect(ended.status).toBe('Successful');
    const attempts = ended.modules[0]!.attempts;
    expect(attempts.map((attempt) => [attempt.workerId, attempt.outcome])).toEqual([
      ['w-one', 'Lost'],
      ['w-two', 'Succeeded'],
    ]);
  });
});

describe('a cancel that comes after the module returned its success, while its outcome settles (round R, R6)', () => {
  it('its large result being stored by reference (the store held): the cancel answered 200 does not drop the success; it is collected and accepted, and the module ran once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mpd-cancel-stops-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const cluster = new Cluster();
    cleanups.push(() => cluster.close());
    // Its result is over the workers' inlineResultBytes (1 KiB): stored in the artifact store by reference.
    const { pipeline, starts } = recordingPipeline('cancel-settling', { pad: 'x'.repeat(8_192) });
    const orchestrator = await cluster.startOrchestrator();
    const store = await startStoreHold(orchestrator.url);
    const { logger, lines } = capturingLogger();
    const cancelAnswered = async (): Promise<void> => {
      while (!lines.some((line) => line.msg === 'cancel accepted: stopping' || line.msg === 'cancel acknowledged'))
        await sleep(50);
    };
    await startWorkerBehindFront(
      cluster,
      cleanups,
      // The first execute reaches w-one; its module returns its success at once, and its result
      // is being stored (held). Then the gateway answers its caller a bare 503: the attempt is
      // lost and cancelled on w-one, which answers 200 (the execution is still there). The
      // store is let go once the run has that answer: the module's success is kept on w-one.
      bare503AfterFirst(
        async () => {
          await store.held;
          const two = await cluster.startWorker({
            id: 'w-two',
            pipeline,
            isolation: 'none',
            inlineResultBytes: 1_024,
            cacheDir: join(dir, 'cache-two'),
          });
          await two.link!.registered();
        },
        async () => {
          await cancelAnswered();
          store.release();
        },
      ),
      {
        pipeline,
        orchestratorUrl: store.url,
        isolation: 'none',
        inlineResultBytes: 1_024,
        cacheDir: join(dir, 'cache-one'),
      },
    );

    const result = await runPipeline({ pipeline, registry: orchestrator.registry, logger });

    // The old code took the 200 as "it runs nowhere": the module ran again on w-two, and the
    // success w-one kept was never asked for.
    expect(starts).toEqual(['w-one']);
    expect(lines.some((line) => line.msg === 'cancel accepted: stopping' && line.status === 200)).toBe(true);
    expect(result.status).toBe('Successful');
    const attempts = result.modules[0]!.attempts;
    expect(attempts.map((attempt) => [attempt.workerId, attempt.outcome])).toEqual([['w-one', 'Succeeded']]);
    expect(attempts[0]!.acceptedLate).toMatchObject({ after: 'Lost' });
  });
});
