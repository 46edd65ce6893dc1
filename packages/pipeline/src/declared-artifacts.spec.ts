import { describe, expect, expectTypeOf, it } from 'vitest';
import { PipelineDefinitionError } from './errors.js';
import { type ArtifactRef, defineModule } from './module.js';
import { definePipeline } from './pipeline.js';

const build = defineModule({
  name: 'build',
  produces: { dist: 'dist/**', docs: { globs: ['*.md'], baseDir: 'docs', compression: 'gzip' } },
  run: () => ({ version: '1.0.0' }),
});

describe('produces and consumes when defined', () => {
  it("gives typed handles of the producer's artifacts and types the references in its result", () => {
    expect(build.artifacts).toEqual({
      dist: { module: 'build', name: 'dist' },
      docs: { module: 'build', name: 'docs' },
    });
    expect(build.produces).toEqual({
      dist: { globs: ['dist/**'], baseDir: undefined, compression: undefined },
      docs: { globs: ['*.md'], baseDir: 'docs', compression: 'gzip' },
    });
    expectTypeOf(build.artifacts.dist).toEqualTypeOf<{ readonly module: 'build'; readonly name: 'dist' }>();
    // @ts-expect-error: not an artifact build produces
    expect(build.artifacts.typo).toBeUndefined();
    const test = defineModule({
      name: 'test',
      dependsOn: [build],
      consumes: [build.artifacts.dist],
      run: (ctx) => {
        expectTypeOf(ctx.result(build).artifacts.dist).toEqualTypeOf<ArtifactRef>();
        expectTypeOf(ctx.result(build).version).toEqualTypeOf<string>();
        return 1;
      },
    });
    expect(test.consumes).toEqual([{ module: 'build', name: 'dist', dir: '.' }]);
    const elsewhere = defineModule({
      name: 'elsewhere',
      dependsOn: [build],
      consumes: [{ artifact: build.artifacts.docs, dir: 'vendor/docs' }],
      run: () => 1,
    });
    expect(elsewhere.consumes).toEqual([{ module: 'build', name: 'docs', dir: 'vendor/docs' }]);
    const other = defineModule({ name: 'other', run: () => null });
    const notADependency = () =>
      defineModule({
        name: 'bad',
        dependsOn: [other],
        // @ts-expect-error: build is not in dependsOn
        consumes: [build.artifacts.dist],
        run: () => 1,
      });
    expect(notADependency).toThrow(
      "Module 'bad': consumes[0] is artifact 'dist' of 'build', which is not in dependsOn: add it there",
    );
  });

  it.each([
    [{ '../x': 'dist/**' }, 'produces: artifact name "../x" must be 1-128 characters'],
    [{ dist: '' }, 'produces.dist must be a glob, a non-empty array of globs, or { globs, baseDir?, compression? }'],
    [{ dist: [] }, 'produces.dist must be a glob'],
    [{ dist: { globs: 'x', baseDir: 3 } }, 'produces.dist.baseDir must be a non-empty path'],
    [{ dist: { globs: 'x', compression: 'zip' } }, `produces.dist.compression must be 'none' or 'gzip', got "zip"`],
    [['dist/**'], 'produces must be an object of artifact name → globs'],
  ])('refuses produces %j, naming the key', (produces, message) => {
    expect(() => defineModule({ name: 'p', produces: produces as never, run: () => ({}) })).toThrow(
      expect.objectContaining({ name: 'PipelineDefinitionError', message: expect.stringContaining(message) }),
    );
  });

  it.each<[string, Record<string, unknown>, string]>([
    [
      'produces',
      { produces: ['dist/**'] },
      `produces must be an object of artifact name → globs, e.g. { dist: 'dist/**' }, got ["dist/**"]`,
    ],
    [
      'produces.dist',
      { produces: { dist: [] } },
      'produces.dist must be a glob, a non-empty array of globs, or { globs, baseDir?, compression? }, got []',
    ],
    [
      'produces.dist.baseDir',
      { produces: { dist: { globs: 'x', baseDir: 3 } } },
      'produces.dist.baseDir must be a non-empty path, got 3',
    ],
    [
      'consumes',
      { consumes: 'dist' },
      'consumes must be an array of artifacts, e.g. [build.artifacts.dist], got "dist"',
    ],
    [
      'consumes[0].dir',
      { consumes: [{ artifact: build.artifacts.dist, dir: '' }] },
      'consumes[0].dir must be a non-empty path (relative to the working directory), got ""',
    ],
  ])('shows the value given in the mistake of %s', (_key, options, detail) => {
    expect(() => defineModule({ name: 'm', dependsOn: [build], run: () => ({}), ...options } as never)).toThrow(
      new PipelineDefinitionError('InvalidModule', `Module 'm': ${detail}`),
    );
  });

  it('refuses a consumes entry that is not an artifact handle', () => {
    expect(() =>
      defineModule({
        name: 'c',
        dependsOn: [build],
        consumes: [build.artifacts.dist, undefined as never],
        run: () => 1,
      }),
    ).toThrow(PipelineDefinitionError);
    expect(() =>
      defineModule({
        name: 'c',
        dependsOn: [build],
        consumes: [{ artifact: build.artifacts.dist, dir: '' }],
        run: () => 1,
      }),
    ).toThrow('consumes[0].dir must be a non-empty path');
    expect(() => defineModule({ name: 'c', dependsOn: [build], consumes: 'dist' as never, run: () => 1 })).toThrow(
      'consumes must be an array of artifacts',
    );
  });

  it("fingerprints the author's code and the declarations, not the wrapper around run", () => {
    const of = (produces: Record<string, string>, run: () => object) =>
      definePipeline({ name: 'p', modules: [defineModule({ name: 'm', produces, run })] }).fingerprint;
    const base = of({ dist: 'dist/**' }, () => ({ a: 1 }));
    expect(of({ dist: 'dist/**' }, () => ({ a: 1 }))).toBe(base);
    expect(of({ dist: 'dist/**' }, () => ({ a: 2 }))).not.toBe(base);
    expect(of({ dist: 'out/**' }, () => ({ a: 1 }))).not.toBe(base);
  });

  it('leaves run as it is for a module that declares no artifacts', () => {
    const run = () => 5;
    expect(defineModule({ name: 'plain', run }).run).toBe(run);
  });
});
