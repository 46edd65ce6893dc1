/**
 * `packages/cli/tsx-loader.mjs` (`mpd`'s way to load TypeScript, through `registerTypeScript`, and
 * the test kit's CLI starts) and the module hosts' preload (`packages/worker/module-host-loader.mjs`)
 * against `node --import tsx` (`pnpm orchestrator`/`pnpm worker`'s, and any user's own): the orchestrator matches a worker by the pipeline's fingerprint and a host
 * runs a module only when its digest matches the worker's, and both hash each module's code as
 * loaded, so every way of starting a process must load the same text. Checked for every pipeline
 * file in the repo and for the cases tsx handles beyond them: a CommonJS package (no `"type"`),
 * an ES one, a `.js` specifier naming a `.ts` file, a `.mts` pipeline. (A `.cts` pipeline, which
 * `require`s the ES-module `@mpd/pipeline`, does not load under `--import tsx` on Node 20 either.)
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const cliDir = fileURLToPath(new URL('..', import.meta.url));
const LOADER = new URL('../tsx-loader.mjs', import.meta.url).href;
/** The module hosts' preload (`@mpd/worker`'s): the same registration as {@link LOADER}, after the host's V8 flags. */
const HOST_LOADER = pathToFileURL(join(root, 'packages/worker/module-host-loader.mjs')).href;
const pipelineEntry = pathToFileURL(join(root, 'packages/pipeline/src/index.ts')).href;
const scratch = mkdtempSync(join(tmpdir(), 'mpd-tsx-loader-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/**
 * Every `*.pipeline.ts` of the repo and the install test's `pipeline.ts`, as git lists them
 * (tracked, or new and not ignored; one that is deleted but still tracked left out): no walk of
 * the tree, which would go through node_modules' links (a quarter of a million entries, seconds
 * of blocked event loop) and meet the `dist/` directories another test deletes and rebuilds.
 */
function repoPipelineFiles(): string[] {
  const listed = execFileSync(
    'git',
    [
      'ls-files',
      '-z',
      '--cached',
      '--others',
      '--exclude-standard',
      '--',
      '*.pipeline.ts',
      'tests/install/fixtures/pipeline.ts',
    ],
    { cwd: root, encoding: 'utf8' },
  );
  const files = [...new Set(listed.split('\0').filter((path) => path !== ''))].sort();
  return files.map((path) => join(root, path)).filter((path) => existsSync(path));
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
  const stdout = await runNode([...nodeArgs, '--input-type=module', '-e', script], env);
  return JSON.parse(stdout) as Record<string, unknown>;
}

/** The node processes {@link runNode} started: each one's process group is SIGKILLed after the test. */
const started: ChildProcess[] = [];

/** SIGKILLs the process group of every process {@link runNode} started (gone ones skipped). */
function killStarted(): void {
  for (const child of started.splice(0)) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // The group is gone already.
    }
  }
}
afterAll(killStarted);

/**
 * How long one node process of {@link loadAll} may run before its group is killed and the test
 * fails with its output: under the test's 180 s bound, so the test reports which process hung.
 */
const PROCESS_TIMEOUT_MS = 150_000;

/**
 * Runs `node …args` in cwd `packages/cli` in a process group of its own (`detached`), and resolves
 * with its stdout once it exits 0; rejects with its stderr when it exits otherwise, and kills its
 * group and rejects when it runs longer than {@link PROCESS_TIMEOUT_MS}.
 */
function runNode(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const child = spawn(process.execPath, args, { cwd: cliDir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      process.kill(-child.pid!, 'SIGKILL');
    }, PROCESS_TIMEOUT_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    // 'close': the process exited and its stdout and stderr are drained.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 && !timedOut) resolve(stdout);
      else {
        const why = timedOut ? `ran over ${PROCESS_TIMEOUT_MS} ms and was killed` : `exited with ${code ?? signal}`;
        reject(new Error(`node ${args.slice(0, 2).join(' ')} … ${why}:\n${stderr}`));
      }
    });
  });
}

describe('tsx-loader.mjs', () => {
  // Four node processes loading ~35 pipelines each (seconds of CPU each): CPU-bound, so a bound
  // for a loaded machine (64 s of wall seen at load ~10 with the three run one after another).
  it(
    'gives every pipeline file the fingerprint and module digests `--import tsx` gives, started with it or imported at run time',
    { timeout: 180_000 },
    async () => {
      const repoFiles = repoPipelineFiles();
      expect(repoFiles.length).toBeGreaterThanOrEqual(30); // git listed the repo's pipelines (32 here)
      const files = [...repoFiles, ...generatedPipelineFiles()];

      let loads: Record<string, unknown>[];
      try {
        loads = await Promise.all([
          loadAll(['--import', 'tsx'], '', files),
          loadAll(['--import', LOADER], '', files),
          // `registerTypeScript` (`mpd`): the loader imported by a process started without tsx.
          loadAll([], `await import(${JSON.stringify(LOADER)});`, files),
          // The module hosts' preload (the worker's hosts, round X).
          loadAll(['--import', HOST_LOADER], '', files),
        ]);
      } finally {
        killStarted(); // one failed: the others are not left running
      }
      const [byTsx, byLoader, byRegister, byHostLoader] = loads as [
        Record<string, unknown>,
        Record<string, unknown>,
        Record<string, unknown>,
        Record<string, unknown>,
      ];

      for (const file of files) {
        const tsx = byTsx[file] as { fingerprint?: string; error?: string };
        expect(tsx.error, file).toBeUndefined(); // every case loads: the comparison is of digests
        expect(tsx.fingerprint, file).toMatch(/^sha256:[0-9a-f]{64}$/);
        expect(byLoader[file], file).toEqual(tsx);
        expect(byRegister[file], file).toEqual(tsx);
        expect(byHostLoader[file], file).toEqual(tsx);
      }
    },
  );
});
