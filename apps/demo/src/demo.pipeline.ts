/**
 * The demo pipeline: restore → build → test-unit / test-integration / lint (and audit) →
 * package → cleanup, on a small sample library (../sample-project). `audit` fails on its first
 * attempt and is retried; `package` and `cleanup` need a worker tagged `fast-disk`; `cleanup`
 * always runs. Each module does real work: hashes files,
 * spawns real processes (node --check, node --test, node), writes an artifact. `build` produces
 * the bundle as an artifact (`produces`), which `test-unit`, `test-integration`, `lint` and
 * `package` consume (`consumes`) on whichever worker they land: each gets the files in a
 * directory of its own under its working directory (`.mpd/demo/<module>`), and hashes them
 * again to show it works on the bundle that was built. The tools run through `ctx.exec`, so
 * their output is the modules' own, shown grouped by the orchestrator.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { defineModule, definePipeline } from '@mpd/pipeline';

const projectRoot = fileURLToPath(new URL('../sample-project/', import.meta.url));
const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(projectRoot, join(entry.parentPath, entry.name)))
    .sort();
}

/** Where module `name` keeps the bundle, relative to its working directory. */
const bundleDir = (name: string): string => `.mpd/demo/${name}`;

/** The bundle's files under `dir` (path → text), read in `paths`' order. */
async function readBundle(dir: string, paths: readonly string[]): Promise<Record<string, string>> {
  const bundle: Record<string, string> = {};
  for (const path of paths) bundle[path] = await readFile(join(dir, path), 'utf8');
  return bundle;
}

/** The hash build gives the bundle, and its consumers check: of its files' paths and texts. */
const bundleHashOf = (bundle: Record<string, string>): string => sha256(JSON.stringify(bundle));

/**
 * Runs `work` on the bundle a consumer got from build (in its working directory, under
 * `bundleDir(name)`): checks it hashes as built, and removes the directory afterwards.
 */
async function withBundle<T>(
  ctx: { name: string; workingDirectory: string; results: { build: { files: string[]; bundleHash: string } } },
  work: (dir: string, bundle: Record<string, string>) => Promise<T>,
): Promise<T> {
  const dir = join(ctx.workingDirectory, bundleDir(ctx.name));
  try {
    const bundle = await readBundle(dir, ctx.results.build.files);
    const hash = bundleHashOf(bundle);
    if (hash !== ctx.results.build.bundleHash) {
      throw new Error(`${ctx.name} got bundle ${hash}, not the built ${ctx.results.build.bundleHash}`);
    }
    return await work(dir, bundle);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const restore = defineModule({
  name: 'restore',
  description: 'Read the sample project and fingerprint every file',
  run: async (ctx) => {
    const files = await listFiles(projectRoot);
    const entries = await Promise.all(
      files.map(async (path) => {
        const data = await readFile(join(projectRoot, path));
        return { path, bytes: data.length, sha256: sha256(data) };
      }),
    );
    const { stdout } = await ctx.exec(process.execPath, ['--version']);
    ctx.logger.info('restored', { files: entries.length });
    return { files: entries, sourceHash: sha256(entries.map((entry) => entry.sha256).join('\n')), node: stdout.trim() };
  },
});

export const build = defineModule({
  name: 'build',
  dependsOn: [restore],
  description: 'Check every source file with `node --check` and bundle the sources (the bundle artifact)',
  // The files build writes under its directory, as the artifact its dependants consume.
  produces: { bundle: { globs: '**', baseDir: bundleDir('build') } },
  run: async (ctx) => {
    const sources = ctx.results.restore.files.filter((file) => file.path.endsWith('.mjs'));
    const out = join(ctx.workingDirectory, bundleDir('build'));
    await rm(out, { recursive: true, force: true });
    const bundle: Record<string, string> = {};
    for (const file of sources) {
      const path = join(projectRoot, file.path);
      await ctx.exec(process.execPath, ['--check', path]);
      const text = await readFile(path, 'utf8');
      if (sha256(text) !== file.sha256) throw new Error(`${file.path} changed since restore`);
      bundle[file.path] = text;
      await mkdir(dirname(join(out, file.path)), { recursive: true });
      await writeFile(join(out, file.path), text);
    }
    ctx.logger.info('bundled', { files: sources.length, dir: bundleDir('build') });
    return {
      files: Object.keys(bundle),
      bundleHash: bundleHashOf(bundle),
      checkedFiles: sources.length,
      sourceHash: ctx.results.restore.sourceHash,
    };
  },
});

export const testUnit = defineModule({
  name: 'test-unit',
  dependsOn: [build],
  consumes: [{ artifact: build.artifacts.bundle, dir: bundleDir('test-unit') }],
  description: 'Run the unit tests with `node --test` against the built bundle',
  run: (ctx) =>
    withBundle(ctx, async (dir) => {
      const { stdout } = await ctx.exec(process.execPath, ['--test', '--test-reporter=tap', 'test/unit.test.mjs'], {
        cwd: dir,
      });
      const count = (name: string): number => Number(new RegExp(`^# ${name} (\\d+)`, 'm').exec(stdout)?.[1] ?? NaN);
      const passed = count('pass');
      const failed = count('fail');
      if (!(passed > 0) || failed !== 0) throw new Error(`unit tests: ${passed} passed, ${failed} failed`);
      return { passed, failed, bundleHash: ctx.results.build.bundleHash };
    }),
});

export const testIntegration = defineModule({
  name: 'test-integration',
  dependsOn: [build],
  consumes: [{ artifact: build.artifacts.bundle, dir: bundleDir('test-integration') }],
  description: 'Run the built library in a real node process and check its output',
  params: { title: 'Hello, Distributed World!', body: 'the pipeline ran the modules and the workers ran the pipeline' },
  run: (ctx) =>
    withBundle(ctx, async (dir) => {
      const script = `import { summarise } from './src/index.mjs';
        process.stdout.write(JSON.stringify(summarise(process.argv[1], process.argv[2])));`;
      const { stdout } = await ctx.exec(
        process.execPath,
        ['--input-type=module', '-e', script, ctx.params.title, ctx.params.body],
        { cwd: dir },
      );
      const summary = JSON.parse(stdout) as { slug: string; words: number; top: string };
      const expected = { slug: 'hello-distributed-world', words: 11, top: 'the' };
      for (const [key, value] of Object.entries(expected)) {
        if (summary[key as keyof typeof summary] !== value) {
          throw new Error(
            `integration: ${key} was ${JSON.stringify(summary[key as keyof typeof summary])}, expected ${JSON.stringify(value)}`,
          );
        }
      }
      ctx.logger.info('summary checked', summary);
      return { checks: Object.keys(expected).length, summary, bundleHash: ctx.results.build.bundleHash };
    }),
});

export const lint = defineModule({
  name: 'lint',
  dependsOn: [build],
  consumes: [{ artifact: build.artifacts.bundle, dir: bundleDir('lint') }],
  description: 'Look for long lines, trailing spaces and stray console.log calls',
  run: (ctx) =>
    withBundle(ctx, async (_dir, bundle) => {
      const warnings: string[] = [];
      for (const [path, text] of Object.entries(bundle)) {
        text.split('\n').forEach((line, index) => {
          if (line.length > 120) warnings.push(`${path}:${index + 1}: line longer than 120 characters`);
          if (/\s+$/.test(line)) warnings.push(`${path}:${index + 1}: trailing whitespace`);
          if (/console\.log\(/.test(line)) warnings.push(`${path}:${index + 1}: console.log`);
        });
      }
      for (const warning of warnings) ctx.logger.warn(warning);
      return { filesChecked: Object.keys(bundle).length, warnings };
    }),
});

/** Known-bad file hashes; a real audit would fetch an advisory feed. */
const ADVISORIES = new Set(['0000000000000000000000000000000000000000000000000000000000000000']);

export const audit = defineModule({
  name: 'audit',
  dependsOn: [restore],
  description: 'Check the restored files against an advisory list (flaky on its first attempt, so it is retried)',
  retry: { attempts: 2, backoffMs: 200 },
  run: (ctx) => {
    // A simulated transient failure (a registry timing out): the first attempt of every run fails.
    if (ctx.executionId.endsWith('.1')) throw new Error('advisory registry timed out (simulated flake)');
    const flagged = ctx.results.restore.files.filter((file) => ADVISORIES.has(file.sha256)).map((file) => file.path);
    return { checked: ctx.results.restore.files.length, flagged, attempt: Number(ctx.executionId.split('.').pop()) };
  },
});

export const packageModule = defineModule({
  name: 'package',
  dependsOn: [build, testUnit, testIntegration, lint, audit],
  consumes: [{ artifact: build.artifacts.bundle, dir: bundleDir('package') }],
  requires: { tags: ['fast-disk'] },
  description: 'Write a gzipped artifact of the tested bundle (on a worker tagged fast-disk)',
  run: (ctx) =>
    withBundle(ctx, async (_dir, bundle) => {
      const { build: built, 'test-unit': unit, 'test-integration': integration, lint: linted } = ctx.results;
      for (const [name, hash] of [
        ['test-unit', unit.bundleHash],
        ['test-integration', integration.bundleHash],
      ] as const) {
        if (hash !== built.bundleHash)
          throw new Error(`${name} tested bundle ${hash}, not the built ${built.bundleHash}`);
      }
      const buildNumber = ctx.env.BUILD_NUMBER ?? 'unknown';
      const manifest = {
        name: 'sample-project',
        buildNumber,
        sourceHash: built.sourceHash,
        bundleHash: built.bundleHash,
        tests: { unitPassed: unit.passed, integrationChecks: integration.checks },
        lintWarnings: linted.warnings.length,
        files: bundle,
      };
      const data = gzipSync(JSON.stringify(manifest));
      const dir = join(ctx.workingDirectory, '.mpd', 'artifacts');
      await mkdir(dir, { recursive: true });
      const artifact = join(dir, `sample-project-${buildNumber}-${built.bundleHash.slice(0, 12)}.json.gz`);
      await writeFile(artifact, data);
      ctx.logger.info('artifact written', { artifact, bytes: data.length });
      return {
        artifact,
        buildNumber,
        bytes: data.length,
        sha256: sha256(data),
        bundleHash: built.bundleHash,
        unitPassed: unit.passed,
        integrationChecks: integration.checks,
        lintWarnings: linted.warnings.length,
      };
    }),
});

export const cleanup = defineModule({
  name: 'cleanup',
  dependsOn: [packageModule],
  alwaysRun: true,
  requires: { tags: ['fast-disk'] },
  description: 'Always, even after a failure or a cancel: keep only the 3 newest artifacts',
  run: async (ctx) => {
    const dir = join(ctx.workingDirectory, '.mpd', 'artifacts');
    const names = (await readdir(dir).catch(() => [] as string[])).filter((name) => name.endsWith('.json.gz'));
    const dated = await Promise.all(
      names.map(async (name) => ({ name, mtime: (await stat(join(dir, name))).mtimeMs })),
    );
    const old = dated.sort((a, b) => b.mtime - a.mtime).slice(3);
    for (const { name } of old) await rm(join(dir, name), { force: true });
    return {
      kept: dated.length - old.length,
      removed: old.map(({ name }) => name),
      packaged: ctx.optionalResult(packageModule) !== undefined,
    };
  },
});

export default definePipeline({
  name: 'demo',
  modules: [restore, build, testUnit, testIntegration, lint, audit, packageModule, cleanup],
});
