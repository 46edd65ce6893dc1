import { defineModule, definePipeline } from '@mpd/pipeline';
import { describe, expect, it } from 'vitest';
import { createModuleStates } from './module-state.js';
import { categoryFilterReason, dependencyResults, dependencyVerdict } from './readiness.js';

describe('categoryFilterReason', () => {
  const filters = (runOnlyCategories: string[], ignoreCategories: string[] = []) => ({
    runOnlyCategories,
    ignoreCategories,
  });

  it('lets every module run without filters', () => {
    expect(categoryFilterReason('build', filters([]))).toBeUndefined();
    expect(categoryFilterReason(undefined, filters([]))).toBeUndefined();
  });

  it('leaves out modules of other categories, or of none, under runOnlyCategories', () => {
    expect(categoryFilterReason('build', filters(['build', 'test']))).toBeUndefined();
    expect(categoryFilterReason('beta', filters(['build']))).toBe("category 'beta' is not in runOnlyCategories");
    expect(categoryFilterReason(undefined, filters(['build']))).toBe('category (none) is not in runOnlyCategories');
  });

  it('leaves out modules of ignored categories', () => {
    expect(categoryFilterReason('slow', filters([], ['slow']))).toBe("category 'slow' is in ignoreCategories");
    expect(categoryFilterReason(undefined, filters([], ['slow']))).toBeUndefined();
  });
});

describe('dependencyVerdict and dependencyResults', () => {
  const run = () => null;
  const a = defineModule({ name: 'a', run });
  const b = defineModule({ name: 'b', run });
  const c = defineModule({ name: 'c', run });
  const needsAll = defineModule({ name: 'needs-all', dependsOn: [a, b], optionalDependsOn: [c], run });
  const cleanup = defineModule({ name: 'cleanup', dependsOn: [a, b], alwaysRun: true, run });
  const pipeline = definePipeline({ name: 'deps', modules: [a, b, c, needsAll, cleanup] });

  /** The modules' states with the dependencies ended as given. */
  const statesWith = (ended: Record<string, { status: 'Successful' | 'Skipped' | 'Failed'; result?: unknown }>) => {
    const modules = createModuleStates(pipeline, new Map(pipeline.order.map((name) => [name, 1])));
    for (const [name, { status, result }] of Object.entries(ended)) {
      const state = modules.get(name)!;
      state.result.status = status;
      if (result !== undefined) state.serializedResult = JSON.stringify(result);
    }
    return modules;
  };

  it('lets a module run once its required dependencies succeeded, whatever its optional ones did', () => {
    const modules = statesWith({ a: { status: 'Successful' }, b: { status: 'Successful' }, c: { status: 'Failed' } });
    expect(dependencyVerdict(modules.get('needs-all')!, pipeline, modules)).toBeUndefined();
  });

  it('skips it after a skipped required dependency, fails it after a failed one: the first in order', () => {
    const skipped = statesWith({ a: { status: 'Skipped' }, b: { status: 'Failed' } });
    expect(dependencyVerdict(skipped.get('needs-all')!, pipeline, skipped)).toEqual({
      status: 'Skipped',
      reason: "dependency 'a' was skipped",
    });
    const failed = statesWith({ a: { status: 'Successful' }, b: { status: 'Failed' } });
    expect(dependencyVerdict(failed.get('needs-all')!, pipeline, failed)).toEqual({
      status: 'DependencyFailed',
      reason: "dependency 'b' ended Failed",
    });
    expect(dependencyVerdict(failed.get('cleanup')!, pipeline, failed)).toBeUndefined();
  });

  it('gives the serialized results of the dependencies that have one', () => {
    const modules = statesWith({
      a: { status: 'Successful', result: { packages: 3 } },
      b: { status: 'Skipped' },
      c: { status: 'Successful', result: 'docs' },
    });
    expect(dependencyResults(modules.get('needs-all')!, pipeline, modules)).toEqual({
      a: '{"packages":3}',
      c: '"docs"',
    });
  });
});
