import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { formatTimeSpan } from '@mpd/contract';
import type { Pipeline } from '@mpd/pipeline';
import type { NodeRegistry } from '../registry/node-registry.js';
import { systemClock } from '../runner/run-clock.js';
import { DEFAULT_RUN_OPTIONS } from '../runner/run-defaults.js';
import { formatSummary, type RunPipelineOptions, type RunResult, runPipeline, unfitReason } from '../runner/index.js';
import { ProgressPrinter } from './progress.js';
import { readTimingsFile, updatedTimings, writeTimingsFile } from './timings-file.js';

/**
 * What `mpd-orchestrator --pipeline FILE` hands to the runner: the options of
 * {@link runPipeline} (the pipeline, registry, logger, environment, working directory,
 * categories, failure mode, limits, TLS to the workers), and what the CLI does around the run.
 */
export interface RunPipelineFromCliOptions extends Omit<RunPipelineOptions, 'signal' | 'onEvent' | 'durationHints'> {
  /**
   * How many compatible workers to wait for before starting, at most `workerWaitMs`: after
   * that the run starts with those there are, and with none, its modules fail at once
   * (`NoCapableWorker`, naming each registered worker and why it does not fit).
   */
  minWorkers: number;
  /** Aborted on SIGTERM/SIGINT: ends any wait, and the run, with the summary and the report. */
  signal: AbortSignal;
  /** Where to write the JSON run report. */
  reportFile?: string;
  /**
   * Module durations of earlier runs: read before the run (the scheduler starts the longest
   * remaining work first) and updated after it. A missing, broken or other pipeline's file
   * is not used, and replaced.
   */
  timingsFile?: string;
  /** Where progress lines and the summary go. @default process.stdout */
  output?: NodeJS.WritableStream;
}

/**
 * Waits until `minWorkers` live workers with the same pipeline fingerprint are registered (at
 * most `workerWaitMs`, and not past a signal), runs the pipeline with a progress line per event,
 * and prints the summary table. A signal during the wait still gives the summary (every module
 * not run) and the report.
 */
export async function runPipelineFromCli(
  options: RunPipelineFromCliOptions,
): Promise<{ success: boolean; result: RunResult }> {
  const { minWorkers, reportFile, timingsFile, output, ...runOptions } = options;
  const { pipeline, registry, signal } = runOptions;
  const workerWaitMs = runOptions.workerWaitMs ?? DEFAULT_RUN_OPTIONS.workerWaitMs;
  const out = output ?? process.stdout;
  const print = (line: string): void => void out.write(`${line}\n`);

  print(
    `[mpd] pipeline '${pipeline.name}' (${pipeline.modules.size} modules, ${pipeline.fingerprint.slice(0, 19)}…): waiting for ${minWorkers} worker(s)`,
  );
  const waited = await waitForWorkers(registry, pipeline, minWorkers, { signal, workerWaitMs, print });
  if (waited === 'cancelled') print('[mpd] cancelled while waiting for workers');
  // The wait is over: with no compatible worker, every module fails at once rather than waiting again.
  if (waited === 'none') runOptions.workerWaitMs = 0;
  const timings = timingsFile ? await readTimingsFile(timingsFile, pipeline.name) : undefined;
  if (timings?.kind === 'read') {
    print(`[mpd] durations of ${Object.keys(timings.timings.modules).length} module(s) read from ${timingsFile}`);
  } else if (timings?.kind === 'invalid' || timings?.kind === 'other-pipeline') {
    const why = timings.kind === 'invalid' ? timings.reason : `it is pipeline '${timings.pipeline}'s`;
    print(`[mpd] timings file ${timingsFile} not used (${why}); this run replaces it`);
  }
  const progress = new ProgressPrinter({ out });
  const result = await runPipeline({
    ...runOptions,
    ...(timings?.kind === 'read' ? { durationHints: timings.timings.modules } : {}),
    onEvent: (event) => progress.event(event),
  });
  progress.stop();
  print('');
  print(formatSummary(result));
  if (reportFile) {
    await mkdir(dirname(reportFile), { recursive: true });
    await writeFile(reportFile, `${JSON.stringify(result, null, 2)}\n`);
    print(`[mpd] run report written to ${reportFile}`);
  }
  if (timingsFile) {
    try {
      await writeTimingsFile(
        timingsFile,
        updatedTimings(timings?.kind === 'read' ? timings.timings : undefined, result),
      );
    } catch (error) {
      // The run's outcome stands; only the next run's ordering loses.
      print(`[mpd] could not write the timings file ${timingsFile}: ${(error as Error).message}`);
    }
  }
  return { success: result.success, result };
}

/**
 * How the wait for workers ended: `ready` (enough compatible workers), `some` (the wait ran
 * out with fewer), `none` (it ran out with none), `cancelled` (a signal).
 */
type WaitOutcome = 'ready' | 'some' | 'none' | 'cancelled';

/**
 * Waits until `minWorkers` live workers of `pipeline` (same fingerprint) are registered, at most
 * `workerWaitMs`, naming once each registered worker that does not fit and why, and, when the
 * wait runs out, every registered worker and why it does not fit.
 */
function waitForWorkers(
  registry: NodeRegistry,
  pipeline: Pipeline,
  minWorkers: number,
  { signal, workerWaitMs, print }: { signal: AbortSignal; workerWaitMs: number; print: (line: string) => void },
): Promise<WaitOutcome> {
  const reported = new Set<string>();
  const compatible = () => registry.snapshot().filter((worker) => unfitReason(worker, pipeline) === undefined);
  return new Promise((resolve) => {
    const check = (): boolean => {
      for (const worker of registry.snapshot()) {
        const why = unfitReason(worker, pipeline);
        if (why !== undefined && worker.status !== 'Offline' && !reported.has(worker.id)) {
          reported.add(worker.id);
          print(`[mpd] worker ${worker.id} is not used: it ${why}`);
        }
      }
      const ready = compatible();
      if (ready.length < minWorkers) return false;
      print(`[mpd] ${ready.length} worker(s) ready: ${ready.map((worker) => worker.id).join(', ')}`);
      return true;
    };
    if (signal.aborted) {
      resolve('cancelled');
      return;
    }
    if (check()) {
      resolve('ready');
      return;
    }
    const stop = (outcome: WaitOutcome): void => {
      cancelTimer();
      unsubscribe();
      signal.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const onAbort = (): void => stop('cancelled');
    const unsubscribe = registry.onChange(() => {
      if (check()) stop('ready');
    });
    // systemClock: a wait past 2^31 ms (about 24.8 days) is chained, not fired at once.
    const cancelTimer = systemClock.after(workerWaitMs, () => {
      const ready = compatible();
      const others = registry
        .snapshot()
        .filter((worker) => !ready.includes(worker))
        .map((worker) => `${worker.id} ${unfitReason(worker, pipeline)!}`);
      print(
        `[mpd] waited ${formatTimeSpan(workerWaitMs)} (--worker-wait) for ${minWorkers} worker(s) with pipeline '${pipeline.name}': ${ready.length} came${
          ready.length > 0 ? ` (${ready.map((worker) => worker.id).join(', ')})` : ''
        }; ${others.length > 0 ? `not fit: ${others.join('; ')}` : 'no other worker is registered'}`,
      );
      print(ready.length > 0 ? '[mpd] starting with the workers there are' : '[mpd] no worker can run the pipeline');
      stop(ready.length > 0 ? 'some' : 'none');
    });
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
