import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnProcess, type SpawnOptions } from './processes.js';

const PRELOAD = fileURLToPath(new URL('./loaded-packages-preload.mjs', import.meta.url));

/** What {@link packagesLoadedBy} saw of a process that ran to its end. */
export interface LoadedPackages {
  /** Its exit code (null when a signal ended it). */
  code: number | null;
  stdout: string;
  stderr: string;
  /**
   * The names of the packages it loaded CommonJS modules from (`express`, `pino`, `commander`,
   * `@scope/name`), from `require.cache` at its exit: a package imported from an ES module is
   * listed when it is CommonJS (express, pino, body-parser, commander's ESM wrapper's own file);
   * ES-module-only packages (zod, ts-rest) are not seen.
   */
  packages: Set<string>;
}

/** The package a module file belongs to: the name after its path's last `node_modules/`; undefined for none. */
function packageOf(file: string): string | undefined {
  const at = file.lastIndexOf('/node_modules/');
  if (at === -1) return undefined;
  const [first, second] = file.slice(at + '/node_modules/'.length).split('/');
  return first?.startsWith('@') ? `${first}/${second}` : first;
}

/**
 * Runs `options` as {@link spawnProcess} does (`node --import tsx SCRIPT ARGS…`, its own process
 * group) until it exits by itself, and tells which packages it loaded: e.g. that a CLI's `--help`
 * loads no server library. For commands that exit on their own (help, a usage error); the
 * caller's `killLeftovers` stops one that does not.
 */
export async function packagesLoadedBy(options: SpawnOptions): Promise<LoadedPackages> {
  const dir = mkdtempSync(join(tmpdir(), 'mpd-loaded-'));
  const file = join(dir, 'modules.json');
  try {
    const run = spawnProcess({
      ...options,
      env: {
        ...options.env,
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${PRELOAD}`.trim(),
        TEST_KIT_LOADED_MODULES_FILE: file,
      },
    });
    const code = await run.exited;
    const files = JSON.parse(readFileSync(file, 'utf8')) as string[];
    const packages = new Set(files.map(packageOf).filter((name): name is string => name !== undefined));
    return { code, stdout: run.stdout(), stderr: run.stderr(), packages };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
