import { writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { formatTimeSpan, type WorkerNode } from '@mpd/contract';
import type { Pipeline } from '@mpd/pipeline';
import { makeDirectory } from '@mpd/server-kit';
import type { NodeRegistry } from '../registry/node-registry.js';
import { systemClock } from '../runner/run-clock.js';
import { DEFAULT_RUN_OPTIONS } from '../runner/run-defaults.js';
import { formatSummary, type RunPipelineOptions, type RunResult, runPipeline, unfitReason } from '../runner/index.js';
import { ciOf, defaultOutputMode, type OutputMode } from './output-modes.js';
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
  /** How the modules' output is printed (`--output`). @default `defaultOutputMode(env)` */
  outputMode?: OutputMode;
  /** Where the CI is read from (`GITHUB_ACTIONS`, `BUILDKITE`). @default process.env */
  env?: NodeJS.ProcessEnv;
  /**
   * Where each attempt's log goes, as `<logsDir>/<module>/<attempt>.log` (with `executionLogs`).
   * @default `.mpd/logs/<the run's start time>` under the current directory
   */
  logsDir?: string;
}

/** Where `--logs-dir` defaults to (a directory per run under it, named by its start time), from the current directory. */
export const DEFAULT_LOGS_DIR = '.mpd/logs';

/**
 * Waits until `minWorkers` live workers with the same pipeline fingerprint are registered (at
 * most `workerWaitMs`, and not past a signal), runs the pipeline with a progress line per event,
 * and prints the summary table. A signal during the wait still gives the summary (every module
 * not run) and the report.
 */
export async function runPipelineFromCli(
  options: RunPipelineFromCliOptions,
): Promise<{ success: boolean; result: RunResult }> {
  const { minWorkers, reportFile, timingsFile, output, outputMode, env = process.env, ...runOptions } = options;
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
  const progress = new ProgressPrinter({ out, outputMode: outputMode ?? defaultOutputMode(env), ci: ciOf(env) });
  const logsDir =
    runOptions.executionLogs === undefined
      ? undefined
      : (runOptions.logsDir ?? resolve(DEFAULT_LOGS_DIR, new Date().toISOString().replace(/:/g, '-')));
  let result: RunResult;
  try {
    result = await runPipeline({
      ...runOptions,
      ...(logsDir === undefined ? {} : { logsDir }),
      ...(timings?.kind === 'read' ? { durationHints: timings.timings.modules } : {}),
      onEvent: (event) => progress.event(event),
    });
  } finally {
    // Its pending lines written before the summary (or the error), its timers and exit listener gone.
    progress.stop();
  }
  print('');
  print(formatSummary(result));
  for (const module of result.modules) {
    if (module.status !== 'Failed' && module.status !== 'TimedOut') continue;
    const tail = progress.tailOf(module.name);
    if (!tail) continue;
    const log = module.attempts[tail.attempt - 1]?.log;
    print('');
    print(
      `[mpd] last ${tail.lines.length} line(s) of ${module.name} (attempt ${tail.attempt}${log ? `, whole log: ${log}` : ''}):`,
    );
    for (const line of tail.lines) print(`[${module.name}] ${line.text}`);
  }
  if (reportFile) {
    await makeDirectory(dirname(reportFile));
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
export type WaitOutcome = 'ready' | 'some' | 'none' | 'cancelled';

/**
 * Waits until `minWorkers` live workers of `pipeline` (same fingerprint) are registered, at most
 * `workerWaitMs`, naming once each registered worker that does not fit and why, and, when the
 * wait runs out, every registered worker and why it does not fit.
 *
 * Each registry event looks at its own worker only (the compatible ones are kept in a set): the
 * work of a wait is proportional to the events, not to the registry's size times the events. It
 * read the whole registry on every event, heartbeats included: 20,000 registrations during the
 * wait took over 100 s instead of 23 (issue 11). The whole registry is read at the start, when
 * the set reaches `minWorkers` (statuses change without events too: a drain, a heartbeat overdue
 * but not swept yet), and when the wait runs out.
 */
export function waitForWorkers(
  registry: NodeRegistry,
  pipeline: Pipeline,
  minWorkers: number,
  { signal, workerWaitMs, print }: { signal: AbortSignal; workerWaitMs: number; print: (line: string) => void },
): Promise<WaitOutcome> {
  const reported = new Set<string>();
  /** The compatible live workers as far as the events tell. */
  const ready = new Set<string>();
  /** Looks at one worker (`undefined`: no longer registered), naming it once if it does not fit. */
  const look = (workerId: string, worker: WorkerNode | undefined): void => {
    const why = worker && unfitReason(worker, pipeline);
    if (worker && why === undefined) {
      ready.add(workerId);
      return;
    }
    ready.delete(workerId);
    if (worker && worker.status !== 'Offline' && !reported.has(workerId)) {
      reported.add(workerId);
      print(`[mpd] worker ${workerId} is not used: it ${why!}`);
    }
  };
  /** Reads the whole registry again; the compatible workers, in registry order. */
  const lookAtAll = (): WorkerNode[] => {
    ready.clear();
    const compatible: WorkerNode[] = [];
    for (const worker of registry.snapshot()) {
      look(worker.id, worker);
      if (ready.has(worker.id)) compatible.push(worker);
    }
    return compatible;
  };
  const enough = (): boolean => {
    if (ready.size < minWorkers) return false;
    const compatible = lookAtAll();
    if (compatible.length < minWorkers) return false;
    print(`[mpd] ${compatible.length} worker(s) ready: ${compatible.map((worker) => worker.id).join(', ')}`);
    return true;
  };
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve('cancelled');
      return;
    }
    lookAtAll();
    if (enough()) {
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
    const unsubscribe = registry.onChange((event) => {
      look(event.workerId, registry.snapshotOf(event.workerId));
      if (enough()) stop('ready');
    });
    // systemClock: a wait past 2^31 ms (about 24.8 days) is chained, not fired at once.
    const cancelTimer = systemClock.after(workerWaitMs, () => {
      const compatible = lookAtAll();
      const others = registry
        .snapshot()
        .filter((worker) => !ready.has(worker.id))
        .map((worker) => `${worker.id} ${unfitReason(worker, pipeline)!}`);
      print(
        `[mpd] waited ${formatTimeSpan(workerWaitMs)} (--worker-wait) for ${minWorkers} worker(s) with pipeline '${pipeline.name}': ${compatible.length} came${
          compatible.length > 0 ? ` (${compatible.map((worker) => worker.id).join(', ')})` : ''
        }; ${others.length > 0 ? `not fit: ${others.join('; ')}` : 'no other worker is registered'}`,
      );
      print(
        compatible.length > 0 ? '[mpd] starting with the workers there are' : '[mpd] no worker can run the pipeline',
      );
      stop(compatible.length > 0 ? 'some' : 'none');
    });
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
