import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The commands the tests start from a bundle ({@link cliBundle}). */
export type BundledCommand = 'orchestrator' | 'worker';

const BUILDER = fileURLToPath(new URL('./build-cli-bundle.mjs', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** Where the bundles go: inside the workspace (so that libraries resolve from there), one directory per sources' key. */
const BUNDLES_DIR = fileURLToPath(new URL('../.cli-bundles/', import.meta.url));
/** The packages a CLI bundle is built from: a change to any of their files, or to the lockfile, makes another key. */
const SOURCE_PACKAGES = ['client', 'contract', 'orchestrator', 'pipeline', 'server-kit', 'worker'];
/** Bundle directories of other keys older than this are removed when a bundle is built (a day, ms). */
const STALE_MS = 24 * 60 * 60 * 1000;

const built = new Map<BundledCommand, string>();
let key: string | undefined;

/**
 * Whether {@link spawnProcess} starts the orchestrator's and the worker's CLI from a bundle
 * ({@link cliBundle}): yes unless `MPD_TEST_CLI_SOURCES=1` is set in the tests' environment
 * (then `node --import tsx-loader.mjs src/cli/main.ts`, as `pnpm worker` runs it).
 */
export const bundlesCliStarts = (): boolean => process.env.MPD_TEST_CLI_SOURCES !== '1';

/**
 * The path of a bundle of `command`'s CLI (what `src/cli/main.ts` runs), built by esbuild from the
 * workspace's sources: one ES module run by plain node, whose start costs about a third of the
 * CPU of the sources under tsx (round Z: 0.40 against 1.14–1.26 CPU-s to the worker's listening
 * line; most of the tests' CPU was CLI starts). See `build-cli-bundle.mjs` for what differs
 * (nothing the CLI does: its `import.meta.url`s are its sources', it registers tsx before it
 * loads a pipeline file).
 *
 * Kept in `packages/test-kit/.cli-bundles/<key>/`, `<key>` a SHA-256 of the sources' files
 * ({@link SOURCE_PACKAGES}: their `src` and `package.json`) and the lockfile: every test process
 * and every copy of the suite on the same sources takes the same file, built once (each build
 * renamed into place whole: two builders at once both write the same bytes), and a changed source
 * gets a bundle of its own. Built before the tests by {@link prebuildCliBundles} (the projects'
 * `globalSetup`), so that no test waits for a build (1–3 s of a blocked event loop); built here
 * otherwise, and again if its file went missing (`git clean`). Directories of other keys older
 * than a day are removed at a build.
 * @throws Error with esbuild's output when the build fails (a syntax error in a source).
 */
export function cliBundle(command: BundledCommand): string {
  const known = built.get(command);
  if (known !== undefined && existsSync(known)) return known;
  key ??= sourcesKey();
  const dir = join(BUNDLES_DIR, key);
  const file = join(dir, `${command}.mjs`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    removeStale(key);
    const partial = join(dir, `${command}.${process.pid}.${Date.now().toString(36)}.partial.mjs`);
    try {
      execFileSync(process.execPath, [BUILDER, command, partial], { stdio: ['ignore', 'pipe', 'pipe'] });
      renameSync(partial, file);
    } catch (error) {
      rmSync(partial, { force: true });
      const { stderr } = error as { stderr?: Buffer };
      throw new Error(`building the ${command} CLI's bundle failed: ${stderr?.toString() ?? String(error)}`, {
        cause: error,
      });
    }
  }
  built.set(command, file);
  return file;
}

/**
 * Builds both CLIs' bundles ({@link cliBundle}) unless `MPD_TEST_CLI_SOURCES=1`: what the
 * projects' vitest `globalSetup` `packages/test-kit/src/prebuild-cli-bundles.ts` runs once before
 * their tests.
 */
export function prebuildCliBundles(): void {
  if (!bundlesCliStarts()) return;
  cliBundle('worker');
  cliBundle('orchestrator');
}

/** The SHA-256 (hex, 16 characters) of the bundles' sources: each file's path and bytes, in order, and the lockfile. */
function sourcesKey(): string {
  const hash = createHash('sha256');
  const add = (file: string): void => {
    hash.update(relative(ROOT, file)).update('\0').update(readFileSync(file)).update('\0');
  };
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.(ts|mts|mjs|js|json)$/.test(entry.name)) add(path);
    }
  };
  for (const name of SOURCE_PACKAGES) {
    add(join(ROOT, 'packages', name, 'package.json'));
    walk(join(ROOT, 'packages', name, 'src'));
  }
  add(join(ROOT, 'pnpm-lock.yaml'));
  add(BUILDER);
  return hash.digest('hex').slice(0, 16);
}

/** Removes bundle directories of keys other than `current` not changed for {@link STALE_MS}; never throws. */
function removeStale(current: string): void {
  try {
    for (const name of readdirSync(BUNDLES_DIR)) {
      if (name === current) continue;
      const path = join(BUNDLES_DIR, name);
      if (Date.now() - statSync(path).mtimeMs > STALE_MS) rmSync(path, { recursive: true, force: true });
    }
  } catch {
    // another copy of the suite removed it meanwhile, or nothing to remove
  }
}
