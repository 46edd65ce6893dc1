import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { PipelineDefinitionError, PipelineLoadError } from './errors.js';
import { loadPipelineFile } from './load.js';
import { defineModule, type ModuleContext } from './module.js';
import { definePipeline, isPipeline } from './pipeline.js';

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
});
