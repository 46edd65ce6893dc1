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
