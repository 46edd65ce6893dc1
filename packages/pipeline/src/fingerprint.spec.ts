import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type AnyModule, defineModule, dependencyName } from './module.js';
import { definePipeline } from './pipeline.js';

/** A `run` whose text is the same under any transform (vitest's, tsx's): `new Function`'s. */
const run = (body: string) => new Function('ctx', body) as () => never;

/**
 * The fingerprint as its definition reads (one JSON text per module, in name order, hashed
 * one update at a time, as 81977d2 computed it): a worker and an orchestrator of different
 * versions compare their values on the wire, so a faster computation must give the same one.
 */
function referenceFingerprint(name: string, modules: readonly AnyModule[]): string {
  const present = new Set(modules.map((module) => module.name));
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ name }));
  for (const module of [...modules].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const required = [...new Set(module.dependsOn.map(dependencyName))];
    const optional = module.optionalDependsOn.filter((other) => present.has(other) && !required.includes(other));
    hash.update(
      JSON.stringify({
        name: module.name,
        dependsOn: [...required, ...optional].sort(),
        params: module.params ?? null,
        timeoutMs: module.timeoutMs ?? null,
        run: module.run.toString(),
        ...(Object.keys(module.produces).length > 0 ? { produces: module.produces } : {}),
        ...(module.consumes.length > 0 ? { consumes: module.consumes } : {}),
      }),
    );
  }
  return `sha256:${hash.digest('hex')}`;
}

const restore = defineModule({ name: 'restore', params: { lockfile: 'pnpm-lock.yaml' }, run: run('return 1') });
const lint = defineModule({ name: 'lint', timeoutMs: 60_000, run: run('return 2') });
const build = defineModule({
  name: 'build',
  dependsOn: [restore, 'restore'],
  optionalDependsOn: ['lint', 'absent'],
  produces: { dist: { globs: ['dist/**', '!**/*.map'], baseDir: 'app' } },
  run: run('return {}'),
});
const test = defineModule({
  name: 'test',
  dependsOn: ['lint', build],
  consumes: [{ artifact: build.artifacts.dist, dir: 'd' }],
  params: { shards: [1, 2, { deep: 'é😀' }] },
  run: run('return 3'),
});

describe('the fingerprint', () => {
  it('keeps its value: dependencies (duplicate, optional, unsorted), params, timeouts and artifacts', () => {
    const pipeline = definePipeline({ name: 'pinned', modules: [test, build, lint, restore] });
    // The value main computed at 81977d2 (before the cost cuts of issue 14) for this pipeline.
    expect(pipeline.fingerprint).toBe('sha256:0569a5fe02b3b27e2b9ad3d44211935e35535c5b6464aab221b3b906ad96bb3c');
    expect(pipeline.fingerprint).toBe(referenceFingerprint('pinned', [test, build, lint, restore]));
  });

  it('keeps the module digests a host compares with the worker (a module that produces, one that consumes)', () => {
    const pipeline = definePipeline({ name: 'pinned', modules: [test, build, lint, restore] });
    // The values main computed at 7913425 for this pipeline: these modules run with `node --import
    // tsx` through main's packages/pipeline/src (`git archive main packages/pipeline`), which gave
    // the fingerprint pinned above too: a change of a digest's value shows here.
    expect(pipeline.moduleDigest('build')).toBe(
      'sha256:200accb2d39d01c0d26d0fcc92515a4f3e061fa49a2bfe05b2fb035aeaa16131',
    );
    expect(pipeline.moduleDigest('test')).toBe(
      'sha256:0d1fe3e8710ff5223ee01ff33161af339b9700b5fb757c3b13ff2f583713a063',
    );
  });

  it('is the same as its definition for pipelines whose text is hashed in several pieces', () => {
    // Over 64 Ki characters of JSON, with characters outside the BMP (surrogate pairs) in every
    // module's text, at lengths that put them on every side of where the text is cut.
    for (const count of [1, 150, 700]) {
      const modules = Array.from({ length: count }, (_, index) =>
        defineModule({
          name: `m${index}`,
          dependsOn: index > 2 ? [`m${index - 1}`, `m${index - 3}`] : [],
          params: { text: `${'x'.repeat(index % 97)}😀${'é'.repeat(index % 13)}` },
          run: run(`return ${index % 5}`),
        }),
      );
      expect(definePipeline({ name: `wide-${count}`, modules }).fingerprint).toBe(
        referenceFingerprint(`wide-${count}`, modules),
      );
    }
  });
});

/** A module whose `run.toString()` counts its calls: what the fingerprint and the digests read. */
function countedModule(name: string, body: string, reads: { count: number }): AnyModule {
  const fn = run(body);
  const text = fn.toString();
  fn.toString = () => {
    reads.count++;
    return text;
  };
  return defineModule({ name, run: fn });
}

describe("a module's digest (what a module host checks before it runs the module)", () => {
  it("is the SHA-256 of the pipeline's name and the module's text in the fingerprint", () => {
    const pipeline = definePipeline({ name: 'pinned', modules: [test, build, lint, restore] });
    const entry = JSON.stringify({
      name: 'build',
      dependsOn: ['lint', 'restore'],
      params: null,
      timeoutMs: null,
      run: build.run.toString(),
      produces: build.produces,
    });
    const expected = createHash('sha256')
      .update(`${JSON.stringify({ name: 'pinned' })}${entry}`)
      .digest('hex');
    expect(pipeline.moduleDigest('build')).toBe(`sha256:${expected}`);
    // Each module its own; asked again, the same.
    const digests = ['test', 'build', 'lint', 'restore'].map((name) => pipeline.moduleDigest(name));
    expect(new Set(digests).size).toBe(4);
    expect(pipeline.moduleDigest('build')).toBe(`sha256:${expected}`);
  });

  it("changes with the module's code, parameters, timeout, dependencies and the pipeline's name; not with another module", () => {
    const of = (name: string, modules: AnyModule[], moduleName = 'a') =>
      definePipeline({ name, modules }).moduleDigest(moduleName);
    const b = defineModule({ name: 'b', run: run('return 1') });
    const base = of('p', [defineModule({ name: 'a', run: run('return 1') }), b]);
    expect(of('p', [defineModule({ name: 'a', run: run('return 2') }), b])).not.toBe(base);
    expect(of('p', [defineModule({ name: 'a', params: { x: 1 }, run: run('return 1') }), b])).not.toBe(base);
    expect(of('p', [defineModule({ name: 'a', timeoutMs: 5, run: run('return 1') }), b])).not.toBe(base);
    expect(of('p', [defineModule({ name: 'a', dependsOn: ['b'], run: run('return 1') }), b])).not.toBe(base);
    expect(of('q', [defineModule({ name: 'a', run: run('return 1') }), b])).not.toBe(base);
    const otherB = defineModule({ name: 'b', run: run('return 9') });
    expect(of('p', [defineModule({ name: 'a', run: run('return 1') }), otherB])).toBe(base);
  });

  it('refuses a module the pipeline does not have (RangeError naming it)', () => {
    const pipeline = definePipeline({ name: 'p', modules: [lint] });
    expect(() => pipeline.moduleDigest('nope')).toThrow(new RangeError("Pipeline 'p' has no module 'nope'"));
  });

  it("reads only that module's code, and the fingerprint reads none until it is read (a module host never reads it)", () => {
    const reads = { count: 0 };
    const modules = Array.from({ length: 50 }, (_, index) => countedModule(`m${index}`, `return ${index}`, reads));
    const pipeline = definePipeline({ name: 'lazy', modules });
    expect(reads.count).toBe(0);
    pipeline.moduleDigest('m7');
    pipeline.moduleDigest('m7');
    expect(reads.count).toBe(1);
    expect(pipeline.fingerprint).toBe(referenceFingerprint('lazy', modules));
    const afterFingerprint = reads.count;
    expect(pipeline.fingerprint).toBe(referenceFingerprint('lazy', modules));
    // Made once, then kept (referenceFingerprint read each module once more itself).
    expect(reads.count).toBe(afterFingerprint + 50);
  });

  it("reads each module's code once for the fingerprint and every digest after it (a worker: registration, then the modules it runs)", () => {
    const reads = { count: 0 };
    const modules = Array.from({ length: 50 }, (_, index) => countedModule(`m${index}`, `return ${index}`, reads));
    const pipeline = definePipeline({ name: 'worker', modules });
    expect(pipeline.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(reads.count).toBe(50);
    const digests = modules.map((module) => pipeline.moduleDigest(module.name));
    expect(reads.count).toBe(50);
    // The same digests as a pipeline that made each one when asked, without its fingerprint.
    const asked = definePipeline({ name: 'worker', modules });
    expect(modules.map((module) => asked.moduleDigest(module.name))).toEqual(digests);
    expect(new Set(digests).size).toBe(50);
  });
});
