/**
 * A cancel that reaches a module host after the module's code returned, while the host still
 * works for its end (round T, T2), or that crosses the host's `returned` on its way (round V,
 * V1): the worker answers the module's success, not Cancelled, and the run collects and accepts
 * it; the module's code ran once. Real orchestrator and workers on 127.0.0.1, the module in a
 * real module host; a plain HTTP front in front of the worker plays the gateway that loses the
 * first execute's answer (the attempt is lost, then cancelled there).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { runPipeline } from '@mpd/orchestrator';
import { loadPipelineFile } from '@mpd/pipeline';
import { asTsxLoads } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { capturingLogger } from '../helpers/capturing-logger.js';
import { Cluster } from '../helpers/cluster.js';
import { startGatewayFront } from '../helpers/gateway-front.js';

const PIPELINE = fileURLToPath(new URL('../fixtures/held-end.pipeline.ts', import.meta.url));
const CROSSING = fileURLToPath(new URL('../fixtures/crossing-return.pipeline.ts', import.meta.url));

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const ledgerLines = (file: string): string[] =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];

/**
 * Runs `file`'s `work` with w-one (a module host, behind a gateway front that loses the first
 * execute's answer) and w-two (in-process, registered once w-one's module is held): the attempt
 * on w-one is lost and cancelled there (200), and the ledger's `holding` line's gate opens once
 * the run has that 200. Resolves with the run's result, the module's runs (ledger) and the run's
 * log lines.
 */
async function lostWhileHeld(file: string) {
  const dir = await mkdtemp(join(tmpdir(), 'mpd-late-cancel-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const ledger = join(dir, 'ledger');
  const gate = join(dir, 'gate');
  const cluster = new Cluster();
  cleanups.push(() => cluster.close());
  // Opened whatever happens, so that no host stays held past the test.
  cleanups.push(async () => writeFileSync(gate, ''));
  const orchestrator = await cluster.startOrchestrator();
  // A pipeline's fingerprint hashes its modules' code as loaded: vitest transforms the file
  // otherwise than tsx, which the module hosts load it with.
  const pipeline = { ...(await loadPipelineFile(file)), ...asTsxLoads(file) };
  const { logger, lines } = capturingLogger();
  let workerUrl = '';
  const frontUrl = await startGatewayFront(
    cleanups,
    () => workerUrl,
    (call, _req, res, forward) => {
      if (call > 1) return forward();
      // The first execute reaches w-one, whose module's host is held (after its code returned, or
      // as it returns). Then the gateway answers its caller a bare 503: the attempt is lost and
      // cancelled on w-one, which answers 200 (the execution is still there). The host is let
      // go once the run has that answer.
      forward((answer) => answer.resume());
      void (async () => {
        while (!ledgerLines(ledger).some((line) => line.startsWith('holding '))) await sleep(50);
        const two = await cluster.startWorker({
          id: 'w-two',
          pipeline,
          slots: 1,
          isolation: 'none',
          cacheDir: join(dir, 'cache-two'),
        });
        await two.link!.registered();
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('no healthy upstream');
        while (!lines.some((line) => line.msg === 'cancel accepted: stopping')) await sleep(50);
        writeFileSync(gate, '');
      })();
    },
  );
  const one = await cluster.startWorker({
    id: 'w-one',
    pipeline,
    endpoint: frontUrl,
    slots: 1,
    isolation: 'process',
    // Its held cancel waits this long for the host's `done` (or verdict): the default 10 s is
    // less than the whole test may take at load 20 (two workers' starts, the gateway's 503, the
    // cancel), after which the cancel would stop the host and the module run again.
    killGraceMs: 30_000,
    cacheDir: join(dir, 'cache-one'),
  });
  workerUrl = one.url;
  await one.link!.registered();

  const finished: string[] = [];
  const result = await runPipeline({
    pipeline,
    registry: orchestrator.registry,
    logger,
    environmentVariables: { LEDGER: ledger, GATE: gate },
    onEvent: (event) => {
      if (event.type === 'module-finished') finished.push(event.module);
    },
  });
  const runs = ledgerLines(ledger).filter((line) => !line.startsWith('holding '));
  return { result, runs, lines, finished };
}

describe("a cancel that reaches a module host after its module's code returned (round T, T2)", () => {
  it('its host still ending the module (held): the worker answers the success, the run collects and accepts it, and the module ran once', async () => {
    const { result, runs, lines } = await lostWhileHeld(PIPELINE);
    // The old code answered the cancel's execution Cancelled (its host stopped): the run
    // collected that and ran the module again on w-two.
    expect(runs.map((line) => line.split(' ')[0])).toEqual(['w-one']);
    expect(lines.some((line) => line.msg === 'cancel accepted: stopping' && line.status === 200)).toBe(true);
    expect(result.status).toBe('Successful');
    const attempts = result.modules[0]!.attempts;
    expect(attempts.map((attempt) => [attempt.workerId, attempt.outcome])).toEqual([['w-one', 'Succeeded']]);
    expect(attempts[0]!.acceptedLate).toMatchObject({ after: 'Lost' });
  });
});

describe("a cancel that crosses its module host's `returned` (sent before the worker read it; round V, V1)", () => {
  it("its module's code returning as the cancel is in flight (its host held before it says `returned`): the host decides, the worker answers the success, the run collects and accepts it once, and the module ran once", async () => {
    const { result, runs, lines, finished } = await lostWhileHeld(CROSSING);
    // The old code stopped the host at the cancel (it had not read `returned`): Cancelled, and
    // the run ran the module again on w-two (its side effect twice).
    expect(runs.map((line) => line.split(' ')[0])).toEqual(['w-one']);
    expect(lines.some((line) => line.msg === 'cancel accepted: stopping' && line.status === 200)).toBe(true);
    expect(result.status).toBe('Successful');
    const [work] = result.modules;
    expect(work!.result).toEqual({ workerId: 'w-one', executionId: runs[0]!.split(' ')[1] });
    expect(work!.attempts.map((attempt) => [attempt.workerId, attempt.outcome])).toEqual([['w-one', 'Succeeded']]);
    expect(work!.attempts[0]!.acceptedLate).toMatchObject({ after: 'Lost' });
    expect(finished).toEqual(['work']);
  });
});
