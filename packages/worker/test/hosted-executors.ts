/**
 * What the specs of modules in module hosts share (`src/executor/hosted-*.spec.ts`, through
 * `module-hosts-spec.ts`, and `src/executor/load-worker-leftover.spec.ts`): a
 * {@link ModuleExecutor} whose modules run in real module hosts (`isolation: 'process'`) with its
 * log lines kept, a started execution's outcome, its result, and whether a process still runs.
 */
import { readFileSync } from 'node:fs';
import { DEFAULT_MAX_RESULT_BYTES } from '@mpd/contract';
import type { Pipeline } from '@mpd/pipeline';
import pino from 'pino';
import type { ExecutionOutcome } from '../src/executor/execution.js';
import { type ExecuteDecision, ModuleExecutor, type ModuleExecutorOptions } from '../src/executor/module-executor.js';

/**
 * A {@link ModuleExecutor} for worker `worker-1` running `pipeline`'s modules in module hosts in
 * `workingDirectory`: 1 slot, 60 s default timeout and retention, the contract's result limit,
 * 1 s kill grace, 64 MB heap per host, its debug log lines (pino's JSON, one a call) given to
 * `logLine`; `options` override any of these. The caller closes it.
 */
export function hostedExecutor(
  pipeline: Pipeline,
  workingDirectory: string,
  logLine: (line: string) => void,
  options: Partial<ModuleExecutorOptions> = {},
): ModuleExecutor {
  return new ModuleExecutor({
    workerId: 'worker-1',
    pipeline,
    slots: 1,
    defaultTimeoutMs: 60_000,
    workingDirectory,
    completedRetentionMs: 60_000,
    maxResultBytes: DEFAULT_MAX_RESULT_BYTES,
    isolation: 'process',
    killGraceMs: 1_000,
    moduleHeapLimitMb: 64,
    logger: pino({ level: 'debug' }, { write: (line: string) => void logLine(line) }),
    ...options,
  });
}

/** The outcome of an execution the executor started; throws (naming the decision) when it did not start it. */
export function startedOutcome(decision: ExecuteDecision): Promise<ExecutionOutcome> {
  if (decision.kind !== 'started') throw new Error(`not started: ${JSON.stringify(decision)}`);
  return decision.outcome;
}

/** The result of a module that succeeded (its `serializedResult` parsed); throws with the error message when it failed. */
export function resultOf(outcome: ExecutionOutcome): Record<string, unknown> {
  if (outcome.status !== 200) throw new Error(`module failed: ${outcome.body.errorMessage}`);
  return JSON.parse(outcome.body.serializedResult) as Record<string, unknown>;
}

/** Whether a process runs, from `/proc` (a zombie does not: it only waits to be reaped; gone: false). */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!);
  } catch {
    return false;
  }
}
