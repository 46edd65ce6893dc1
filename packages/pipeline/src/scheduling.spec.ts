import { describe, expect, expectTypeOf, it } from 'vitest';
import { defineModule } from './module.js';
import { definePipeline } from './pipeline.js';

const one = (): number => 1;

describe('module scheduling options', () => {
  it('has defaults that change nothing', () => {
    const module = defineModule({ name: 'plain', run: one });
    expect(module).toMatchObject({
      optionalDependsOn: [],
      requires: {},
      skipIf: undefined,
      retry: undefined,
      ignoreFailures: false,
      alwaysRun: false,
      priority: 'Normal',
      category: undefined,
      tags: [],
      notInParallel: [],
      parallelLimit: undefined,
    });
  });

  it('normalises the options', () => {
    const module = defineModule({
      name: 'full',
      run: one,
      optionalDependsOn: ['maybe'],
      requires: { os: ['linux', 'macos'], tools: ['docker'], tags: ['gpu'] },
      skipIf: (ctx) => (ctx.env.SKIP ? 'asked to' : undefined),
      retry: 2,
      ignoreFailures: true,
      alwaysRun: true,
      priority: 'Critical',
      category: 'tests',
      tags: ['slow'],
      notInParallel: true,
      parallelLimit: { key: 'db', limit: 2 },
    });
    expect(module).toMatchObject({
      optionalDependsOn: ['maybe'],
      requires: { os: ['linux', 'macos'], tools: ['docker'], tags: ['gpu'] },
      retry: { attempts: 2, backoffMs: 1_000, maxBackoffMs: 60_000 },
      ignoreFailures: true,
      alwaysRun: true,
      priority: 'Critical',
      category: 'tests',
      tags: ['slow'],
      notInParallel: 'all',
      parallelLimit: { key: 'db', limit: 2 },
    });
    expect(defineModule({ name: 'keys', run: one, notInParallel: ['db', 'cache'] }).notInParallel).toEqual([
      'db',
      'cache',
    ]);
    expect(defineModule({ name: 'r', run: one, retry: { attempts: 3, backoffMs: 10 } }).retry).toEqual({
      attempts: 3,
      backoffMs: 10,
      maxBackoffMs: 60_000,
    });
  });

  it('types skipIf from the dependencies and params', () => {
    const restore = defineModule({ name: 'restore', run: () => ({ cached: true }) });
    defineModule({
      name: 'build',
      dependsOn: [restore],
      params: { flavour: 'release' },
      skipIf: (ctx) => {
        expectTypeOf(ctx.results.restore.cached).toEqualTypeOf<boolean>();
        expectTypeOf(ctx.params.flavour).toEqualTypeOf<string>();
        return ctx.results.restore.cached ? 'nothing changed' : undefined;
      },
      run: (ctx) => expectTypeOf(ctx.optionalResult(restore)).toEqualTypeOf<{ cached: boolean } | undefined>(),
    });
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['priority', { priority: 'Urgent' }, /priority must be one of Low, Normal, High, Critical/],
    ['retry', { retry: -1 }, /retry must be/],
    ['retry backoff', { retry: { attempts: 1, backoffMs: 10, maxBackoffMs: 5 } }, /retry must be/],
    ['requires', { requires: { os: 'linux' } }, /requires.os must be an array/],
    ['parallelLimit', { parallelLimit: { key: 'db', limit: 0 } }, /parallelLimit must be/],
    ['notInParallel', { notInParallel: 'db' }, /notInParallel must be/],
    ['skipIf', { skipIf: 'yes' }, /skipIf must be a function/],
    ['optionalDependsOn', { optionalDependsOn: [42] }, /optionalDependsOn\[0\]/],
  ])('rejects an invalid %s, naming the module', (_what, options, message) => {
    expect(() => defineModule({ name: 'bad', run: one, ...options } as never)).toThrow(message);
    expect(() => defineModule({ name: 'bad', run: one, ...options } as never)).toThrow(/^Module 'bad'/);
  });
});

describe('pipeline scheduling options', () => {
  it('waits for optional dependencies that are in the pipeline and ignores the others', () => {
    const lint = defineModule({ name: 'lint', run: one });
    const report = defineModule({ name: 'report', optionalDependsOn: [lint, 'coverage'], run: one });
    expect(definePipeline({ name: 'with', modules: [report, lint] }).dependencies.get('report')).toEqual(['lint']);
    expect(definePipeline({ name: 'with', modules: [report, lint] }).order).toEqual(['lint', 'report']);
    expect(definePipeline({ name: 'without', modules: [report] }).dependencies.get('report')).toEqual([]);
  });

  it('has pipeline defaults, failure mode and max parallelism', () => {
    const plain = definePipeline({ name: 'p', modules: [defineModule({ name: 'a', run: one })] });
    expect(plain.defaults).toEqual({
      timeoutMs: 1_800_000,
      retry: { attempts: 0, backoffMs: 1_000, maxBackoffMs: 60_000 },
    });
    expect(plain.failureMode).toBe('StopOnFirstFailure');
    expect(plain.maxParallelism).toBeUndefined();
    const custom = definePipeline({
      name: 'p',
      modules: [defineModule({ name: 'a', run: one })],
      defaults: { timeoutMs: 60_000, retry: 2 },
      failureMode: 'WaitForAll',
      maxParallelism: 3,
    });
    expect(custom.defaults).toEqual({
      timeoutMs: 60_000,
      retry: { attempts: 2, backoffMs: 1_000, maxBackoffMs: 60_000 },
    });
    expect(custom).toMatchObject({ failureMode: 'WaitForAll', maxParallelism: 3 });
    const a = defineModule({ name: 'a', run: one });
    expect(() => definePipeline({ name: 'p', modules: [a], failureMode: 'Sometimes' as never })).toThrow(/failureMode/);
    expect(() => definePipeline({ name: 'p', modules: [a], maxParallelism: 0 })).toThrow(/maxParallelism/);
    expect(() => definePipeline({ name: 'p', modules: [a], defaults: { timeoutMs: -1 } })).toThrow(/timeoutMs/);
  });
});
