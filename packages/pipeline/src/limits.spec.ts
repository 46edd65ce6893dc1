import { LIMITS, loadedPipelineSchema } from '@mpd/contract';
import { describe, expect, it } from 'vitest';
import { PipelineDefinitionError } from './errors.js';
import { type AnyModule, defineModule } from './module.js';
import { definePipeline } from './pipeline.js';

const run = (): number => 1;
const { maxLength } = LIMITS.moduleName;

/** What a worker advertising `pipeline` sends: the registration's `pipeline` field. */
const advertised = (modules: readonly AnyModule[]) => {
  const pipeline = definePipeline({ name: 'p', modules });
  return { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: [...pipeline.modules.keys()] };
};

describe('limits at definition time (the contract’s LIMITS)', () => {
  it('takes module names up to LIMITS.moduleName.maxLength, and a worker can advertise each', () => {
    const names = ['a', `m${'x'.repeat(maxLength - 1)}`, 'Build.Api:linux@2/x_y-z'];
    const modules = names.map((name) => defineModule({ name, run }));
    expect(loadedPipelineSchema.safeParse(advertised(modules)).success).toBe(true);
  });

  it('refuses, naming it and its length, a module name the registration schema would refuse (the worker’s endless retry of issue 10, case 12)', () => {
    const name = `m${'x'.repeat(maxLength)}`;
    expect(loadedPipelineSchema.safeParse({ name: 'p', fingerprint: 'f', modules: [name] }).success).toBe(false);
    expect(() => defineModule({ name, run })).toThrow(
      `defineModule: name "${name}" must be 1-${maxLength} characters of letters, digits and . _ : @ / -, starting with a letter or digit (it has ${maxLength + 1})`,
    );
    expect(() => defineModule({ name: 'ok', dependsOn: [name], run })).toThrow(/dependsOn\[0\]/);
  });

  it('refuses, at definePipeline, a module whose name another copy of defineModule let through, naming it', () => {
    const name = `m${'x'.repeat(150)}`;
    // What an older copy of @mpd/pipeline (1-200 characters) made: the brand, with a name past today's limit.
    const foreign = { ...defineModule({ name: 'ok', run }), name } as AnyModule;
    let error: unknown;
    try {
      definePipeline({ name: 'ci', modules: [foreign] });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(PipelineDefinitionError);
    expect((error as PipelineDefinitionError).code).toBe('InvalidModule');
    expect((error as Error).message).toBe(
      `Pipeline 'ci': module "${name}" cannot be sent to workers: its name must be 1-${maxLength} characters of letters, digits and . _ : @ / -, starting with a letter or digit (it has 151)`,
    );
  });

  it('refuses a pipeline of more modules than a worker can advertise; takes one of exactly that many', () => {
    const count = LIMITS.pipeline.maxModules;
    const modules = Array.from({ length: count + 1 }, (_, index) => defineModule({ name: `m${index}`, run }));
    expect(() => definePipeline({ name: 'huge', modules })).toThrow(
      `Pipeline 'huge': ${count + 1} modules, over the limit of ${count} (what a worker can advertise)`,
    );
    expect(loadedPipelineSchema.safeParse(advertised(modules.slice(0, count))).success).toBe(true);
  });

  it('refuses a pipeline whose module names take more characters together than a worker can advertise', () => {
    const { maxNameCharacters } = LIMITS.pipeline;
    // Names of 100 characters: exactly the limit, then one character more.
    const names = (count: number) => Array.from({ length: count }, (_, index) => `m${String(index).padStart(99, '0')}`);
    const atLimit = names(maxNameCharacters / 100).map((name) => defineModule({ name, run }));
    expect(loadedPipelineSchema.safeParse(advertised(atLimit)).success).toBe(true);
    definePipeline({ name: 'wide', modules: atLimit });
    const over = [...atLimit, defineModule({ name: 'x', run })];
    expect(() => definePipeline({ name: 'wide', modules: over })).toThrow(
      `Pipeline 'wide': its module names take ${maxNameCharacters + 1} characters together, over the limit of ${maxNameCharacters} (what a worker can advertise)`,
    );
    const overNames = over.map((module) => module.name);
    expect(loadedPipelineSchema.safeParse({ name: 'wide', fingerprint: 'f', modules: overNames }).success).toBe(false);
  });

  it('orders a chain as long as the largest pipeline without recursing (no stack overflow)', () => {
    const count = LIMITS.pipeline.maxModules;
    const modules: AnyModule[] = [defineModule({ name: 'm0', run })];
    for (let index = 1; index < count; index++) {
      modules.push(defineModule({ name: `m${index}`, dependsOn: [modules[index - 1]!], run }));
    }
    const pipeline = definePipeline({ name: 'chain', modules: [...modules].reverse() });
    expect(pipeline.order).toEqual(modules.map((module) => module.name));
    // A cycle through the whole chain is still named, start to end.
    const first = defineModule({ name: 'first', dependsOn: ['last'], run });
    const middle = defineModule({ name: 'middle', dependsOn: [first], run });
    const last = defineModule({ name: 'last', dependsOn: [middle], run });
    expect(() => definePipeline({ name: 'loop', modules: [first, middle, last] })).toThrow(
      "Pipeline 'loop': dependency cycle 'first' -> 'last' -> 'middle' -> 'first'",
    );
  });

  it('refuses params nested deeper than LIMITS.json.maxDepth, naming the depth', () => {
    const { maxDepth } = LIMITS.json;
    const nested = (depth: number): unknown => JSON.parse('['.repeat(depth) + ']'.repeat(depth));
    expect(() => defineModule({ name: 'ok', params: nested(maxDepth), run })).not.toThrow();
    expect(() => defineModule({ name: 'deep', params: nested(maxDepth + 1), run })).toThrow(
      `Module 'deep': params are nested ${maxDepth + 1} levels deep, over the limit of ${maxDepth} levels`,
    );
  });

  it('names the limit of names it refuses elsewhere in a module', () => {
    expect(() => defineModule({ name: 'ok', tags: ['t'.repeat(LIMITS.name.maxLength + 1)], run })).toThrow(
      `Module 'ok': tags must be an array of names (each a non-empty string of at most ${LIMITS.name.maxLength} characters)`,
    );
  });
});
