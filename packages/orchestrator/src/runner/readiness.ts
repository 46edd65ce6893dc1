/** Whether a module may run: the run's category filters, and the outcomes of its dependencies. */
import type { Pipeline } from '@mpd/pipeline';
import type { ModuleState } from './module-state.js';
import type { ResolvedRunOptions } from './run-options.js';
import { SUCCEEDED } from './run-result.js';

/**
 * Why the run's category filters leave a module of `category` out (it is then `Skipped`), or
 * undefined when they let it run.
 */
export function categoryFilterReason(
  category: string | undefined,
  { runOnlyCategories, ignoreCategories }: Pick<ResolvedRunOptions, 'runOnlyCategories' | 'ignoreCategories'>,
): string | undefined {
  if (runOnlyCategories.length > 0 && !(category && runOnlyCategories.includes(category))) {
    return `category ${category ? `'${category}'` : '(none)'} is not in runOnlyCategories`;
  }
  if (category && ignoreCategories.includes(category)) return `category '${category}' is in ignoreCategories`;
  return undefined;
}

/**
 * Why a module whose dependencies all ended does not run because of them, or undefined when
 * they let it run: the first required dependency (in `dependsOn` order) that was skipped makes
 * it `Skipped`, one that did not succeed makes it `DependencyFailed`. Optional dependencies
 * never stop it, and nothing stops an always-run module.
 */
export function dependencyVerdict(
  state: ModuleState,
  pipeline: Pick<Pipeline, 'dependencies'>,
  modules: ReadonlyMap<string, ModuleState>,
): { status: 'Skipped' | 'DependencyFailed'; reason: string } | undefined {
  if (state.definition.alwaysRun) return undefined;
  for (const dependency of pipeline.dependencies.get(state.name) ?? []) {
    if (!state.required.has(dependency)) continue; // optional: its outcome does not matter
    const status = modules.get(dependency)!.result.status;
    if (status === 'Skipped') return { status: 'Skipped', reason: `dependency '${dependency}' was skipped` };
    if (!SUCCEEDED.has(status))
      return { status: 'DependencyFailed', reason: `dependency '${dependency}' ended ${status}` };
  }
  return undefined;
}

/**
 * The results of a module's dependencies that succeeded, by name, as serialized (sent to its
 * worker as such): an object without a prototype, so that its keys (module names) are kept in a
 * hash table. A plain object's keys make its hidden class: each chain module's one key (the
 * module before it) made a new class and a new transition from the empty object's, per module
 * (`Runtime_SetKeyedProperty` was 1.2 % of the orchestrator's main thread in a chain of 2,000;
 * 0.8 against 0.3 µs to build and serialise one, issue 14 round H). `JSON.stringify`,
 * `Object.entries` and `for…in` read it as they read a plain object, in insertion order.
 */
export function dependencyResults(
  state: ModuleState,
  pipeline: Pick<Pipeline, 'dependencies'>,
  modules: ReadonlyMap<string, ModuleState>,
): Record<string, string> {
  const results: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const dependency of pipeline.dependencies.get(state.name) ?? []) {
    const serialized = modules.get(dependency)!.serializedResult;
    if (serialized !== undefined) results[dependency] = serialized;
  }
  return results;
}
