import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { PipelineDefinitionError, PipelineLoadError } from './errors.js';
import { loadPipelineFile } from './load.js';
import { defineModule, type ModuleContext } from './module.js';
import { definePipeline, isPipeline, type Pipeline } from './pipeline.js';

const restore = defineModule({ name: 'restore', run: () => ({ packages: 12 }) });
const build = defineModule({
  name: 'build',
  dependsOn: [restore],
  run: (ctx) => ({ built: ctx.results.restore.packages, artifact: 'dist/app.tgz' }),
});
const test = defineModule({ name: 'test', dependsOn: [build, restore], run: (ctx) => ctx.result(build).built > 0 });

describe('defineModule', () => {
  it('types dependency results from their run return types', () => {
    type Ctx = Parameters<typeof test.run>[0];
    expectTypeOf<Ctx['results']>().toEqualTypeOf<{
      readonly build: { built: number; artifact: string };
      readonly restore: { packages: number };
    }>();
    expectTypeOf<ReturnType<typeof test.run>>().toEqualTypeOf<boolean | Promise<boolean>>();
    const byName = defineModule({ name: 'late', dependsOn: ['restore'], run: (ctx) => ctx.results.restore });
    expectTypeOf<ReturnType<typeof byName.run>>().toEqualTypeOf<unknown>();
  });

  it('gives run a context with env, working directory, signal and logger', () => {
    expectTypeOf<ModuleContext['signal']>().toEqualTypeOf<AbortSignal>();
    expectTypeOf<ModuleContext['env']>().toEqualTypeOf<Readonly<Record<string, string>>>();
    expectTypeOf<ModuleContext['workingDirectory']>().toEqualTypeOf<string>();
  });

  const one = (): number => 1;
  it.each<[Record<string, unknown>, RegExp]>([
    [{ name: '', run: one }, /name/],
    [{ name: 'has space', run: one }, /name/],
    [{ name: 'ok' }, /run must be a function/],
    [{ name: 'ok', run: one, dependsOn: [undefined] }, /dependsOn\[0\].*undefined/],
    [{ name: 'ok', run: one, timeoutMs: -5 }, /timeoutMs/],
  ])('rejects an invalid module %#', (options, message) => {
    expect(() => defineModule(options as never)).toThrow(message);
    expect(() => defineModule(options as never)).toThrow(PipelineDefinitionError);
  });

  it('names every mistake of a module in one InvalidModule error (a bad artifact name, a consumed artifact of a module not in dependsOn, bad options); each alone keeps its message', () => {
    const build = defineModule({ name: 'build', produces: { dist: 'dist/**' }, run: one });
    // In the order defineModule looks at them.
    const wrong: Record<string, unknown> = {
      timeoutMs: -5,
      priority: 'Urgent',
      tags: ['ok', ''],
      produces: { 'bad name': 'x/**', ok: 'y/**' },
      consumes: [build.artifacts.dist],
    };
    const errorOf = (options: Record<string, unknown>): PipelineDefinitionError => {
      try {
        defineModule({ name: 'pack', run: one, ...options } as never);
      } catch (error) {
        if (error instanceof PipelineDefinitionError) return error;
      }
      throw new Error('defineModule took it');
    };
    const alone = Object.entries(wrong).map(([key, value]) => errorOf({ [key]: value }).message);
    expect(alone.every((message) => message.startsWith("Module 'pack': "))).toBe(true);
    expect(alone.at(-1)).toBe(
      "Module 'pack': consumes[0] is artifact 'dist' of 'build', which is not in dependsOn: add it there",
    );
    const error = errorOf(wrong);
    expect(error.code).toBe('InvalidModule');
    expect(error.message).toBe(
      [
        "Module 'pack' has 5 mistakes:",
        ...alone.map((message) => `  - ${message.slice("Module 'pack': ".length)}`),
      ].join('\n'),
    );
    expect(error.mistakes).toEqual(alone.map((message) => ({ code: 'InvalidModule', message })));
  });

  const A_NAME = 'a non-empty string of at most 128 characters';
  it.each<[string, Record<string, unknown>, string]>([
    ['run', { run: 'npm test' }, 'run must be a function, got "npm test"'],
    ['dependsOn', { dependsOn: 'restore' }, 'dependsOn must be an array of modules, got "restore"'],
    ['timeoutMs', { timeoutMs: -5 }, 'timeoutMs must be a positive number of milliseconds, got -5'],
    ['timeoutMs', { timeoutMs: Number.NaN }, 'timeoutMs must be a positive number of milliseconds, got NaN'],
    [
      'optionalDependsOn',
      { optionalDependsOn: 'lint' },
      'optionalDependsOn must be an array of modules or module names, got "lint"',
    ],
    [
      'optionalDependsOn',
      { optionalDependsOn: [42] },
      'optionalDependsOn[0] is neither a module made by defineModule nor a module name (got number 42)',
    ],
    ['requires', { requires: 'linux' }, 'requires must be { os?, tools?, tags? }, got "linux"'],
    ['requires', { requires: { os: 'linux' } }, `requires.os must be an array of names (each ${A_NAME}), got "linux"`],
    ['skipIf', { skipIf: true }, 'skipIf must be a function, got true'],
    ['category', { category: ' ' }, `category must be ${A_NAME}, got " "`],
    ['tags', { tags: ['ok', ''] }, `tags must be an array of names (each ${A_NAME}), got ["ok",""]`],
    [
      'notInParallel',
      { notInParallel: 'db' },
      'notInParallel must be true, false, or an array of constraint keys, got "db"',
    ],
    [
      'parallelLimit',
      { parallelLimit: { key: 'db', limit: 0 } },
      `parallelLimit must be { key: ${A_NAME}, limit: an integer of at least 1 }, got {"key":"db","limit":0}`,
    ],
    [
      'retry',
      { retry: { attempts: 1.5 } },
      'retry must be { attempts: an integer from 0 to 100, backoffMs >= 0, maxBackoffMs >= backoffMs }, got {"attempts":1.5}',
    ],
  ])('shows the value given in its mistake: %s', (_key, options, detail) => {
    expect(() => defineModule({ name: 'bad', run: one, ...options } as never)).toThrow(
      new PipelineDefinitionError('InvalidModule', `Module 'bad': ${detail}`),
    );
  });

  it('cuts a long value shown in a mistake', () => {
    expect(() => defineModule({ name: 'bad', run: one, category: 'c'.repeat(500) } as never)).toThrow(
      `Module 'bad': category must be ${A_NAME}, got "${'c'.repeat(56)}…`,
    );
  });

  it("a module defined while another is being defined (from its params, as JSON) keeps its mistakes apart from the other's", () => {
    let inner: unknown;
    const params = {
      toJSON: () => {
        try {
          defineModule({ name: 'inner', run: one, tags: [''] } as never);
        } catch (error) {
          inner = error;
        }
        return 1;
      },
    };
    expect(() => defineModule({ name: 'outer', run: one, timeoutMs: -5, params } as never)).toThrow(
      /^Module 'outer': timeoutMs must be a positive number of milliseconds/,
    );
    expect((inner as PipelineDefinitionError).message).toMatch(/^Module 'inner': tags must be an array of names/);
    expect(defineModule({ name: 'after', run: one }).name).toBe('after');
  });
});

describe('definePipeline', () => {
  it('orders modules after their dependencies and records dependants', () => {
    const pipeline = definePipeline({ name: 'ci', modules: [test, build, restore] });
    expect(pipeline.order).toEqual(['restore', 'build', 'test']);
    expect(pipeline.dependencies.get('test')).toEqual(['build', 'restore']);
    expect(pipeline.dependants.get('restore')).toEqual(['build', 'test']);
    expect(isPipeline(pipeline)).toBe(true);
    expect(isPipeline({ ...pipeline })).toBe(true);
    expect(isPipeline({ name: 'x' })).toBe(false);
  });

  it('rejects a dependency that is not in the pipeline, naming both modules', () => {
    const error = (() => {
      try {
        definePipeline({ name: 'ci', modules: [build] });
      } catch (e) {
        return e as PipelineDefinitionError;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(PipelineDefinitionError);
    expect(error?.code).toBe('MissingDependency');
    expect(error?.message).toBe(
      "Pipeline 'ci': module 'build' depends on 'restore', which is not in the pipeline's modules",
    );
  });

  it('rejects a cycle, naming its path', () => {
    const a = defineModule({ name: 'a', dependsOn: ['c'], run: () => 1 });
    const b = defineModule({ name: 'b', dependsOn: [a], run: () => 1 });
    const c = defineModule({ name: 'c', dependsOn: [b], run: () => 1 });
    expect(() => definePipeline({ name: 'loop', modules: [a, b, c] })).toThrow(
      "Pipeline 'loop': dependency cycle 'a' -> 'c' -> 'b' -> 'a'",
    );
    const self = defineModule({ name: 'self', dependsOn: ['self'], run: () => 1 });
    expect(() => definePipeline({ name: 'loop', modules: [self] })).toThrow(/cycle 'self' -> 'self'/);
  });

  it('rejects duplicate names and empty pipelines', () => {
    const twin = defineModule({ name: 'restore', run: () => 2 });
    expect(() => definePipeline({ name: 'ci', modules: [restore, twin] })).toThrow(/two modules are named 'restore'/);
    expect(() => definePipeline({ name: 'ci', modules: [] })).toThrow(/non-empty/);
    expect(() => definePipeline({ name: '', modules: [restore] })).toThrow(/name/);
  });

  it('fingerprints the definitions: same code, same fingerprint; changed code, another', () => {
    const one = definePipeline({ name: 'ci', modules: [restore, build] });
    const again = definePipeline({ name: 'ci', modules: [build, restore] });
    const changedBuild = defineModule({ name: 'build', dependsOn: [restore], run: () => ({ built: 0, artifact: '' }) });
    const changed = definePipeline({ name: 'ci', modules: [restore, changedBuild] });
    expect(one.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(again.fingerprint).toBe(one.fingerprint);
    expect(changed.fingerprint).not.toBe(one.fingerprint);
  });
});

/** What `definePipeline(options)` throws. */
function definitionError(options: Parameters<typeof definePipeline>[0]): PipelineDefinitionError {
  try {
    definePipeline(options);
  } catch (error) {
    if (error instanceof PipelineDefinitionError) return error;
    throw error;
  }
  throw new Error('definePipeline took it');
}

describe('definePipeline: every mistake of a pipeline in one error, as tsc lists every error of a program', () => {
  const run = (): number => 1;

  it('names them all in one InvalidPipeline error, in the order found; each with its code and message in `mistakes`', () => {
    // A cycle a -> c -> b -> a, two dependencies missing, a name taken twice, an entry that is no module, bad options.
    const a = defineModule({ name: 'a', dependsOn: ['c'], run });
    const b = defineModule({ name: 'b', dependsOn: [a], run });
    const c = defineModule({ name: 'c', dependsOn: [b], run });
    const lint = defineModule({ name: 'lint', dependsOn: ['format', 'typecheck'], run });
    const twin = defineModule({ name: 'lint', dependsOn: ['nowhere'], run });
    const error = definitionError({
      name: 'ci',
      modules: [a, b, c, lint, twin, { name: 'fake' } as never],
      failureMode: 'Sometimes' as never,
      maxParallelism: 0,
    });
    expect(error.code).toBe('InvalidPipeline');
    const details = [
      "two modules are named 'lint'",
      'modules[5] is not a module made by defineModule',
      "module 'lint' depends on 'format', which is not in the pipeline's modules",
      "module 'lint' depends on 'typecheck', which is not in the pipeline's modules",
      'failureMode must be StopOnFirstFailure or WaitForAll, got "Sometimes"',
      'maxParallelism must be an integer of at least 1, got 0',
      "dependency cycle 'a' -> 'c' -> 'b' -> 'a'",
    ];
    expect(error.message).toBe(
      [`Pipeline 'ci' has ${details.length} mistakes:`, ...details.map((detail) => `  - ${detail}`)].join('\n'),
    );
    expect(error.mistakes.map(({ code }) => code)).toEqual([
      'DuplicateModule',
      'InvalidModule',
      'MissingDependency',
      'MissingDependency',
      'InvalidPipeline',
      'InvalidPipeline',
      'DependencyCycle',
    ]);
    expect(error.mistakes.map(({ message }) => message)).toEqual(details.map((detail) => `Pipeline 'ci': ${detail}`));
  });

  it('one mistake: its own code and message, as when the first was thrown alone', () => {
    const error = definitionError({ name: 'ci', modules: [build] });
    expect(error.code).toBe('MissingDependency');
    expect(error.message).toBe(
      "Pipeline 'ci': module 'build' depends on 'restore', which is not in the pipeline's modules",
    );
    expect(error.mistakes).toEqual([{ code: error.code, message: error.message }]);
  });

  it("a mistake of the pipeline's own options (defaults, failureMode, maxParallelism) is InvalidPipeline, showing the value given", () => {
    const retry = definitionError({ name: 'ci', modules: [restore], defaults: { retry: -1 } });
    expect(retry.code).toBe('InvalidPipeline');
    expect(retry.message).toBe(
      "Pipeline 'ci': defaults.retry must be { attempts: an integer from 0 to 100, backoffMs >= 0, maxBackoffMs >= backoffMs }, got -1",
    );
    const timeout = definitionError({ name: 'ci', modules: [restore], defaults: { timeoutMs: 0 } });
    expect([timeout.code, timeout.message]).toEqual([
      'InvalidPipeline',
      "Pipeline 'ci': defaults.timeoutMs must be a positive number, got 0",
    ]);
    const parallelism = definitionError({ name: 'ci', modules: [restore], maxParallelism: 2.5 });
    expect([parallelism.code, parallelism.message]).toEqual([
      'InvalidPipeline',
      "Pipeline 'ci': maxParallelism must be an integer of at least 1, got 2.5",
    ]);
  });

  it('every cycle, one per dependency that closes it; a module missing from the pipeline is no part of a cycle', () => {
    const x = defineModule({ name: 'x', dependsOn: ['y', 'gone'], run });
    const y = defineModule({ name: 'y', dependsOn: [x], run });
    const self = defineModule({ name: 'self', dependsOn: ['self'], run });
    const z = defineModule({ name: 'z', dependsOn: [x, self], run });
    const error = definitionError({ name: 'loops', modules: [z, x, y, self] });
    expect(error.mistakes.map(({ message }) => message)).toEqual([
      "Pipeline 'loops': module 'x' depends on 'gone', which is not in the pipeline's modules",
      "Pipeline 'loops': dependency cycle 'x' -> 'y' -> 'x'",
      "Pipeline 'loops': dependency cycle 'self' -> 'self'",
    ]);
  });

  it('lists at most 20 in its message, saying how many more; `mistakes` holds every one', () => {
    const modules = Array.from({ length: 25 }, (_, index) =>
      defineModule({ name: `m${index}`, dependsOn: [`gone${index}`], run }),
    );
    const error = definitionError({ name: 'wide', modules });
    const lines = error.message.split('\n');
    expect(lines[0]).toBe("Pipeline 'wide' has 25 mistakes:");
    expect(lines.slice(1, 21)).toEqual(
      Array.from(
        { length: 20 },
        (_, index) => `  - module 'm${index}' depends on 'gone${index}', which is not in the pipeline's modules`,
      ),
    );
    expect(lines.slice(21)).toEqual(["  … and 5 more (the error's mistakes list them all)"]);
    expect(error.mistakes).toHaveLength(25);
  });
});

describe('loadPipelineFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mpd-pipeline-'));
  const moduleUrl = new URL('./index.ts', import.meta.url).href;

  it('loads the default export of a .ts file', async () => {
    const file = join(dir, 'ok.pipeline.ts');
    writeFileSync(
      file,
      `import { defineModule, definePipeline } from ${JSON.stringify(moduleUrl)};
       const only = defineModule({ name: 'only', run: (): number => 1 });
       export default definePipeline({ name: 'from-file', modules: [only] });`,
    );
    const pipeline = await loadPipelineFile(file);
    expect(pipeline.name).toBe('from-file');
    expect([...pipeline.modules.keys()]).toEqual(['only']);
    // Recorded for the worker's module hosts; a pipeline defined in code has none.
    expect(pipeline.sourceFile).toBe(file);
    expect(isPipeline(pipeline)).toBe(true);
    expect(definePipeline({ name: 'in-code', modules: [...pipeline.modules.values()] }).sourceFile).toBeUndefined();
  });

  it("keeps the export as it is: the fingerprint not made by the load (a module host never reads it), the module digests the export's", async () => {
    const file = join(dir, 'lazy.pipeline.ts');
    writeFileSync(
      file,
      `import { defineModule, definePipeline } from ${JSON.stringify(moduleUrl)};
       const reads = { count: 0 };
       const counted = (n: number) => { const fn = () => n; fn.toString = () => { reads.count++; return 'r' + n; }; return fn; };
       export const pipelineReads = reads;
       export default definePipeline({ name: 'lazy-file', modules: [1, 2, 3].map((n) => defineModule({ name: 'm' + n, run: counted(n) })) });`,
    );
    const pipeline = await loadPipelineFile(file);
    const exported = (await import(pathToFileURL(file).href)) as {
      pipelineReads: { count: number };
      default: Pipeline;
    };
    expect(exported.pipelineReads.count).toBe(0);
    expect(pipeline.moduleDigest('m2')).toBe(exported.default.moduleDigest('m2'));
    // One module's code read, once: the copy shares the export's digests (and fingerprint).
    expect(exported.pipelineReads.count).toBe(1);
    expect(pipeline.fingerprint).toBe(exported.default.fingerprint);
    expect(pipeline.sourceFile).toBe(file);
    expect(Object.isFrozen(pipeline)).toBe(true);
  });

  it("gives a pipeline made by a copy of this package without moduleDigest this copy's", async () => {
    const file = join(dir, 'older.pipeline.ts');
    writeFileSync(
      file,
      `import { defineModule, definePipeline } from ${JSON.stringify(moduleUrl)};
       const { moduleDigest, ...older } = definePipeline({ name: 'older', modules: [defineModule({ name: 'only', run: () => 1 })] });
       export default Object.freeze(older);`,
    );
    const pipeline = await loadPipelineFile(file);
    const [only] = pipeline.modules.values();
    expect(pipeline.moduleDigest('only')).toBe(
      definePipeline({ name: 'older', modules: [only!] }).moduleDigest('only'),
    );
  });

  it('says what is wrong with a file that is missing, broken or exports no pipeline', async () => {
    await expect(loadPipelineFile(join(dir, 'missing.ts'))).rejects.toMatchObject({ code: 'FileNotFound' });
    const broken = join(dir, 'broken.mjs');
    writeFileSync(broken, 'throw new Error("boom at load");');
    await expect(loadPipelineFile(broken)).rejects.toThrow(/boom at load/);
    const none = join(dir, 'none.mjs');
    writeFileSync(none, 'export const x = 1;');
    await expect(loadPipelineFile(none)).rejects.toBeInstanceOf(PipelineLoadError);
    await expect(loadPipelineFile(none)).rejects.toMatchObject({ code: 'NoPipelineExport' });
  });

  it('names where node looked for a package the file imports and did not find, and how to mend it', async () => {
    // Outside any node_modules that holds it (a new user's pipeline in /tmp, round AE).
    const outside = mkdtempSync(join(tmpdir(), 'mpd-pipeline-outside-'));
    for (const [name, text] of [
      ['esm.mjs', "import { definePipeline } from '@mpd/no-such-package/sub';\nexport default definePipeline;"],
      ['ts.pipeline.ts', "import { definePipeline } from '@mpd/no-such-package';\nexport default definePipeline;"],
    ] as const) {
      const file = join(outside, name);
      writeFileSync(file, text);
      const failure = loadPipelineFile(file);
      await expect(failure).rejects.toMatchObject({ code: 'ImportFailed' });
      await expect(failure).rejects.toThrow(
        `(node looks for '@mpd/no-such-package' in the node_modules of ${outside} and of its parents: install it there, e.g. \`npm install @mpd/no-such-package\` in your project, or put the file in a directory that has it)`,
      );
    }
    // A relative import that is missing is the file's own mistake, and a package missing for a
    // dependency (not for the file) is not mended beside the file: node's words alone, which
    // name the importing file.
    const relative = join(outside, 'relative.mjs');
    writeFileSync(relative, "import './not-there.mjs';");
    const dependency = join(outside, 'node_modules', 'half-installed');
    mkdirSync(dependency, { recursive: true });
    writeFileSync(
      join(dependency, 'package.json'),
      JSON.stringify({ name: 'half-installed', type: 'module', main: 'index.js' }),
    );
    writeFileSync(join(dependency, 'index.js'), "export { x } from 'its-own-missing-dependency';");
    const viaDependency = join(outside, 'via-dependency.pipeline.ts');
    writeFileSync(viaDependency, "import { x } from 'half-installed';\nexport default x;");
    for (const file of [relative, viaDependency]) {
      const failure = loadPipelineFile(file);
      await expect(failure).rejects.toMatchObject({ code: 'ImportFailed' });
      await expect(failure).rejects.not.toThrow(/node looks for/);
    }
    await expect(loadPipelineFile(viaDependency)).rejects.toThrow(/its-own-missing-dependency/);
    rmSync(outside, { recursive: true, force: true });
  });
});
