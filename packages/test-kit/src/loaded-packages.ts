import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
   * The names of the packages it loaded modules from (`express`, `pino`, `commander`,
   * `@scope/name`): CommonJS ones from `require.cache` at its exit, ES modules (zod, ts-rest)
   * from a resolve hook that lists each as it is resolved.
   */
  packages: Set<string>;
  /** The absolute paths of every module file it loaded, CommonJS and ES (our own `.ts` sources too). */
  files: string[];
}

/** The package a module file belongs to: the name after its path's last `node_modules/`; undefined for none. */
function packageOf(file: string): string | undefined {
  const at = file.lastIndexOf('/node_modules/');
  if (at === -1) return undefined;
  const [first, second] = file.slice(at + '/node_modules/'.length).split('/');
  return first?.startsWith('@') ? `${first}/${second}` : first;
}

/**
 * Runs `options` as {@link spawnProcess} does, with `sources` unless `sources: false` is given
 * (`node --import TSX_LOADER SCRIPT ARGS…`, its own process group) until it exits by itself, and tells which packages it loaded: e.g. that a CLI's `--help`
 * loads no server library. For commands that exit on their own (help, a usage error); the
 * caller's `killLeftovers` stops one that does not.
 *
 * `untilListening`: for a server, which is sent SIGTERM once it printed its `listening on` line
 * (and no request reached it); it must exit by itself then (its `exit` event writes the list),
 * SIGKILL after 20 s. What it loaded is then what its start loaded (round Z, Z3).
 */
export async function packagesLoadedBy(options: SpawnOptions & { untilListening?: boolean }): Promise<LoadedPackages> {
  const dir = mkdtempSync(join(tmpdir(), 'mpd-loaded-'));
  const file = join(dir, 'modules.json');
  try {
    const run = spawnProcess({
      ...options,
      // A bundle loads one file: the sources show what a start loads. `sources: false` starts a
      // CLI's bundle (when the tests bundle them): then only what it imports at run time (tsx) shows.
      sources: options.sources ?? true,
      env: {
        ...options.env,
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${PRELOAD}`.trim(),
        TEST_KIT_LOADED_MODULES_FILE: file,
      },
    });
    if (options.untilListening) {
      await run.listeningUrl();
      await run.stop('SIGTERM', 20_000);
    }
    const code = await run.exited;
    const esm = existsSync(`${file}.esm`) ? readFileSync(`${file}.esm`, 'utf8').split('\n').filter(Boolean) : [];
    const files = [
      ...new Set([...(JSON.parse(readFileSync(file, 'utf8')) as string[]), ...esm.map((url) => fileURLToPath(url))]),
    ];
    const packages = new Set(files.map(packageOf).filter((name): name is string => name !== undefined));
    return { code, stdout: run.stdout(), stderr: run.stderr(), packages, files };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
