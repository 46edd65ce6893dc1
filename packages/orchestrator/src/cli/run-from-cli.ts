import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Pipeline } from '@mpd/pipeline';
import type { NodeRegistry } from '../registry/node-registry.js';
import { formatSummary, type RunPipelineOptions, type RunResult, runPipeline } from '../runner/index.js';
import { ProgressPrinter } from './progress.js';
import { readTimingsFile, updatedTimings, writeTimingsFile } from './timings-file.js';

/**
 * What `mpd-orchestrator --pipeline FILE` hands to the runner: the options of
 * {@link runPipeline} (the pipeline, registry, logger, environment, working directory,
 * categories, failure mode, limits, TLS to the workers), and what the CLI does around the run.
 */
export interface RunPipelineFromCliOptions extends Omit<RunPipelineOptions, 'signal' | 'onEvent' | 'durationHints'> {
  /** How many compatible workers to wait for before starting. */
  minWorkers: number;
  /** Aborted on SIGTERM/SIGINT. */
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
 * Waits until `minWorkers` live workers with the same pipeline fingerprint are registered,
 * runs the pipeline with a progress line per event, and prints the summary table.
 */
export async function runPipelineFromCli(
  options: RunPipelineFromCliOptions,
): Promise<{ success: boolean; result?: RunResult }> {
  const { minWorkers, reportFile, timingsFile, output, ...runOptions } = options;
  const { pipeline, registry, signal } = runOptions;
  const out = output ?? process.stdout;
  const print = (line: string): void => void out.write(`${line}\n`);

  print(
    `[mpd] pipeline '${pipeline.name}' (${pipeline.modules.size} modules, ${pipeline.fingerprint.slice(0, 19)}…): waiting for ${minWorkers} worker(s)`,
  );
  const ready = await waitForWorkers(registry, pipeline, minWorkers, signal, print);
  if (!ready) {
    print('[mpd] cancelled before the pipeline started');
    return { success: false };
  }
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

/** Resolves true once enough compatible workers are live; false when `signal` aborts first. */
function waitForWorkers(
  registry: NodeRegistry,
  pipeline: Pipeline,
  minWorkers: number,
  signal: AbortSignal,
  print: (line: string) => void,
): Promise<boolean> {
  const reported = new Set<string>();
  return new Promise((resolve) => {
    const check = (): boolean => {
      const live = registry.list().filter((worker) => worker.status !== 'Offline');
      for (const worker of live) {
        if (worker.pipeline?.fingerprint !== pipeline.fingerprint && !reported.has(worker.id)) {
          reported.add(worker.id);
          print(
            `[mpd] worker ${worker.id} is not used: it loaded ${worker.pipeline ? `pipeline '${worker.pipeline.name}' with another fingerprint` : 'no pipeline'}`,
          );
        }
      }
      const compatible = live.filter((worker) => worker.pipeline?.fingerprint === pipeline.fingerprint);
      if (compatible.length < minWorkers) return false;
      print(`[mpd] ${compatible.length} worker(s) ready: ${compatible.map((worker) => worker.id).join(', ')}`);
      return true;
    };
    if (check()) {
      resolve(true);
      return;
    }
    const stop = (value: boolean): void => {
      unsubscribe();
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const onAbort = (): void => stop(false);
    const unsubscribe = registry.onChange(() => {
      if (check()) stop(true);
    });
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
