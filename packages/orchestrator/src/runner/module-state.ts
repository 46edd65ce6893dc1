import { formatTimeSpan } from '@mpd/contract';
import { type AnyModule, dependencyName, type Pipeline, type ResolvedRetryPolicy } from '@mpd/pipeline';
import type { Attempt } from './attempt.js';
import type { ModuleRunResult, ModuleStatus } from './run-result.js';

/** Each priority's rank: ready modules of a higher rank are considered first. */
export const PRIORITY_RANK = { Critical: 3, High: 2, Normal: 1, Low: 0 } as const;

/** Failure statuses that stop a `StopOnFirstFailure` run. */
export const FAILED: ReadonlySet<ModuleStatus> = new Set(['Failed', 'TimedOut']);

/** Where a module is in a run. */
export type Phase =
  /** Waiting for dependencies. */
  | 'waiting'
  /** Dependencies ended; `skipIf` is being asked. */
  | 'deciding'
  /** May be dispatched (from `notBefore`, after a failed attempt). */
  | 'ready'
  | 'running'
  | 'done';

/** A module of a run: its definition as sent to workers, and how far it got. */
export interface ModuleState {
  readonly name: string;
  readonly definition: AnyModule;
  readonly order: number;
  /** `PRIORITY_RANK` of its priority. */
  readonly rank: number;
  /**
   * The remaining work it heads (see `chainHeights`): among ready modules of the same
   * priority, the one heading the most starts first, so that long chains do not end up
   * waiting for slots at the end of the run.
   */
  readonly height: number;
  /** Modules with the same key have the same `requires` (placement is worked out once per key). */
  readonly requiresKey: string;
  /** Names of its required dependencies (`dependsOn`, not `optionalDependsOn`). */
  readonly required: ReadonlySet<string>;
  /** Its params as sent to workers (`serializedModule`). */
  readonly serializedParams: string;
  /** Its timeout as a TimeSpan, as sent to workers. */
  readonly timeout: string;
  readonly retry: ResolvedRetryPolicy;
  readonly timeoutMs: number;
  phase: Phase;
  /** Dependencies that have not ended yet. */
  readonly pending: Set<string>;
  failures: number;
  /** How many of its attempts counted as lost (see `maxLostAttempts`). */
  lost: number;
  /** Workers this module was lost on: avoided while others can take it. */
  readonly lostOn: Set<string>;
  /**
   * `workerId#generation` of each worker start whose endpoint refused one of its attempts: all
   * refusals of one start count as one loss (one crash, one loss).
   */
  readonly refusedBy: Set<string>;
  /**
   * Its attempts that may still be running somewhere (see `Attempt.ended`): while one is, no new
   * attempt of it starts, so that it never runs twice at once.
   */
  readonly unended: Set<Attempt>;
  notBefore: number;
  serializedResult?: string;
  readonly result: ModuleRunResult;
}

/** One key per distinct `requires` ('' for none). */
export function requiresKeyOf(requires: AnyModule['requires']): string {
  const { os = [], tools = [], tags = [] } = requires;
  return os.length + tools.length + tags.length === 0 ? '' : JSON.stringify([os, tools, tags]);
}

/**
 * The state of each module of `pipeline` at the start of a run, in pipeline order: waiting,
 * with the pipeline's defaults applied, `heights` from `chainHeights`.
 */
export function createModuleStates(pipeline: Pipeline, heights: ReadonlyMap<string, number>): Map<string, ModuleState> {
  const modules = new Map<string, ModuleState>();
  pipeline.order.forEach((name, order) => {
    const definition = pipeline.modules.get(name)!;
    const timeoutMs = definition.timeoutMs ?? pipeline.defaults.timeoutMs;
    modules.set(name, {
      name,
      definition,
      order,
      rank: PRIORITY_RANK[definition.priority],
      height: heights.get(name)!,
      requiresKey: requiresKeyOf(definition.requires),
      required: new Set(definition.dependsOn.map(dependencyName)),
      serializedParams: JSON.stringify(definition.params ?? null),
      timeout: formatTimeSpan(timeoutMs),
      retry: definition.retry ?? pipeline.defaults.retry,
      timeoutMs,
      phase: 'waiting',
      pending: new Set(pipeline.dependencies.get(name) ?? []),
      failures: 0,
      lost: 0,
      lostOn: new Set(),
      refusedBy: new Set(),
      unended: new Set(),
      notBefore: 0,
      result: { name, status: 'NotYetStarted', attempts: [] },
    });
  });
  return modules;
}
