import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The commands the tests start from a bundle ({@link cliBundle}). */
export type BundledCommand = 'orchestrator' | 'worker';

const BUILDER = fileURLToPath(new URL('./build-cli-bundle.mjs', import.meta.url));
/** Where this process's bundles go: inside the workspace (libraries resolve from there), its own directory. */
const BUNDLES_DIR = fileURLToPath(new URL('../.cli-bundles/', import.meta.url));
const built = new Map<BundledCommand, string>();
let ownDir: string | undefined;

/**
 * Whether {@link spawnProcess} starts the orchestrator's and the worker's CLI from a bundle
 * ({@link cliBundle}): yes unless `MPD_TEST_CLI_SOURCES=1` is set in the tests' environment
 * (then `node --import tsx-loader.mjs src/cli/main.ts`, as `pnpm worker` runs it).
 */
export const bundlesCliStarts = (): boolean => process.env.MPD_TEST_CLI_SOURCES !== '1';

/**
 * The path of a bundle of `command`'s CLI (`src/cli/main.ts`), built by esbuild from the
 * workspace's sources the first time this process asks (about 0.5 s), then reused: one ES module
 * run by plain node, whose start costs about a third of the CPU of the sources under tsx
 * (round Z: 0.40 against 1.14–1.26 CPU-s to the worker's listening line; most of the tests' CPU
 * was CLI starts). See `build-cli-bundle.mjs` for what differs (nothing the CLI does: its
 * `import.meta.url`s are its sources', it registers tsx before it loads a pipeline file). Each
 * process builds its own, in a directory of its own, removed when it exits: a copy of the suite
 * running beside this one, or a source changed between two runs, never meets a stale bundle.
 * @throws Error with esbuild's output when the build fails (a syntax error in a source).
 */
export function cliBundle(command: BundledCommand): string {
  const known = built.get(command);
  if (known !== undefined) return known;
  if (ownDir === undefined) {
    removeOrphans();
    ownDir = join(BUNDLES_DIR, `${process.pid}-${Date.now().toString(36)}`);
    mkdirSync(ownDir, { recursive: true });
    const dir = ownDir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  const outfile = join(ownDir, `${command}.mjs`);
  try {
    execFileSync(process.execPath, [BUILDER, command, outfile], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const { stderr } = error as { stderr?: Buffer };
    throw new Error(`building the ${command} CLI's bundle failed: ${stderr?.toString() ?? String(error)}`, {
      cause: error,
    });
  }
  built.set(command, outfile);
  return outfile;
}

/**
 * Removes the bundle directories of processes that are gone (killed before their `exit` handler
 * ran: a vitest fork killed at a timeout). A directory whose process runs is kept, whoever it is.
 */
function removeOrphans(): void {
  let names: string[];
  try {
    names = readdirSync(BUNDLES_DIR);
  } catch {
    return; // none yet
  }
  for (const name of names) {
    const pid = Number(name.split('-')[0]);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      process.kill(pid, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH')
        rmSync(join(BUNDLES_DIR, name), { recursive: true, force: true });
    }
  }
}
