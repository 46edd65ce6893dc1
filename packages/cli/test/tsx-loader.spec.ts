/**
 * `packages/cli/tsx-loader.mjs` (`mpd`'s way to load TypeScript, through `registerTypeScript`) against
 * `node --import tsx` (the module hosts', `pnpm orchestrator`/`pnpm worker`'s, the tests', and any
 * user's own): the orchestrator matches a worker by the pipeline's fingerprint and a host
 * runs a module only when its digest matches the worker's, and both hash each module's code as
 * loaded, so every way of starting a process must load the same text. Checked for every pipeline
 * file in the repo and for the cases tsx handles beyond them: a CommonJS package (no `"type"`),
 * an ES one, a `.js` specifier naming a `.ts` file, a `.mts` pipeline. (A `.cts` pipeline, which
 * `require`s the ES-module `@mpd/pipeline`, does not load under `--import tsx` on Node 20 either.)
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const cliDir = fileURLToPath(new URL('..', import.meta.url));
const LOADER = new URL('../tsx-loader.mjs', import.meta.url).href;
const pipelineEntry = pathToFileURL(join(root, 'packages/pipeline/src/index.ts')).href;
const scratch = mkdtempSync(join(tmpdir(), 'mpd-tsx-loader-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Every `*.pipeline.ts` of the repo (outside node_modules and dist) and the install test's `pipeline.ts`. */
function repoPipelineFiles(): string[] {
  const files = (readdirSync(root, { recursive: true }) as string[])
    .filter((path) => !/(^|\/)(node_modules|dist|\.git|\.nx)\//.test(path))
    .filter((path) => /\.pipeline\.ts$/.test(path) || path === 'tests/install/fixtures/pipeline.ts')
    .sort();
  return files.map((path) => join(root, path));
}

/** A project of its own under the scratch directory, with `@mpd/pipeline` linked in its node_modules. */
function project(name: string, packageJson: object, files: Record<string, string>): string {
  const dir = join(scratch, name);
  mkdirSync(join(dir, 'node_modules/@mpd'), { recursive: true });
  symlinkSync(join(root, 'packages/pipeline'), join(dir, 'node_modules/@mpd/pipeline'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify(packageJson));
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return dir;
}

const helper = `export function shout(text: string): string {\n  return text.toUpperCase() + '!';\n}\n`;
const pipelineText = (helperSpecifier: string): string =>
  [
    `import { defineModule, definePipeline } from '@mpd/pipeline';`,
    `import { shout } from '${helperSpecifier}';`,
    `interface Built { text: string }`,
    `const build = defineModule({ name: 'build', run: async (): Promise<Built> => ({ text: shout('built') }) });`,
    `const test = defineModule({ name: 'test', dependsOn: [build], run: async (ctx) => (await ctx.result(build)).text.length });`,
    `export default definePipeline({ name: 'loader-check', modules: [build, test] });`,
    '',
  ].join('\n');

/** The generated cases: files tsx loads beyond the repo's own (each is TypeScript with types to strip). */
function generatedPipelineFiles(): string[] {
  const commonJs = project(
    'commonjs',
    { name: 'cjs-project' },
    { 'helper.ts': helper, 'ci.pipeline.ts': pipelineText('./helper.js') },
  );
  const esm = project(
    'esm',
    { name: 'esm-project', type: 'module' },
    {
      'helper.ts': helper,
      'ci.pipeline.ts': pipelineText('./helper.js'),
      'ci.pipeline.mts': pipelineText('./helper.js'),
    },
  );
  return [join(commonJs, 'ci.pipeline.ts'), join(esm, 'ci.pipeline.ts'), join(esm, 'ci.pipeline.mts')];
}

/**
 * Loads each of `files` with `loadPipelineFile` in one node process started with `nodeArgs`
 * (after `before`, a statement run first), and returns per file its fingerprint and module
 * digests, or the error it gave.
 */
async function loadAll(nodeArgs: string[], before: string, files: string[]): Promise<Record<string, unknown>> {
  const script = [
    before,
    `const { loadPipelineFile } = await import(${JSON.stringify(pipelineEntry)});`,
    `const out = {};`,
    `for (const file of ${JSON.stringify(files)}) {`,
    `  try {`,
    `    const pipeline = await loadPipelineFile(file);`,
    `    const digests = Object.fromEntries([...pipeline.modules.keys()].map((name) => [name, pipeline.moduleDigest(name)]));`,
    `    out[file] = { fingerprint: pipeline.fingerprint, digests };`,
    `  } catch (error) { out[file] = { error: String(error) }; }`,
    `}`,
    `console.log(JSON.stringify(out));`,
  ].join('\n');
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('MPD_')));
  const { stdout } = await promisify(execFile)(process.execPath, [...nodeArgs, '--input-type=module', '-e', script], {
    cwd: cliDir,
    env,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('tsx-loader.mjs', () => {
  // Three node processes loading ~35 pipelines each (seconds of CPU each): CPU-bound, so a bound
  // for a loaded machine (64 s of wall seen at load ~10 with the three run one after another).
  it(
    'gives every pipeline file the fingerprint and module digests `--import tsx` gives, started with it or imported at run time',
    { timeout: 180_000 },
    async () => {
      const repoFiles = repoPipelineFiles();
      expect(repoFiles.length).toBeGreaterThanOrEqual(30); // the glob found the repo's pipelines
      const files = [...repoFiles, ...generatedPipelineFiles()];

      const [byTsx, byLoader, byRegister] = await Promise.all([
        loadAll(['--import', 'tsx'], '', files),
        loadAll(['--import', LOADER], '', files),
        // `registerTypeScript` (`mpd`): the loader imported by a process started without tsx.
        loadAll([], `await import(${JSON.stringify(LOADER)});`, files),
      ]);

      for (const file of files) {
        const tsx = byTsx[file] as { fingerprint?: string; error?: string };
        expect(tsx.error, file).toBeUndefined(); // every case loads: the comparison is of digests
        expect(tsx.fingerprint, file).toMatch(/^sha256:[0-9a-f]{64}$/);
        expect(byLoader[file], file).toEqual(tsx);
        expect(byRegister[file], file).toEqual(tsx);
      }
    },
  );
});
