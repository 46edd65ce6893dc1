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

/** The results of a module's dependencies that succeeded, by name, as serialized (sent to its worker as such). */
export function dependencyResults(
  state: ModuleState,
  pipeline: Pick<Pipeline, 'dependencies'>,
  modules: ReadonlyMap<string, ModuleState>,
): Record<string, string> {
  const results: Record<string, string> = {};
  for (const dependency of pipeline.dependencies.get(state.name) ?? []) {
    const serialized = modules.get(dependency)!.serializedResult;
    if (serialized !== undefined) results[dependency] = serialized;
  }
  return results;
}
