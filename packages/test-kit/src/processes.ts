import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type BundledCommand, bundlesCliStarts, cliBundle } from './cli-bundles.js';
import { testNodeFlags } from './node-flags.js';
import { processGroupOf, processTree } from './process-tree.js';

export interface SpawnOptions {
  /** The TypeScript (or JavaScript) file to run under tsx (see {@link spawnProcess}) and {@link testNodeFlags}. */
  script: string;
  /** Command-line arguments after the script. */
  args?: string[];
  /** Working directory; default: this process's. */
  cwd?: string;
  /** Variables set on top of the inherited environment. */
  env?: Record<string, string>;
  /** Drop the inherited `MPD_*` variables and `INIT_CWD` first, so only `env` configures the CLI. */
  cleanEnv?: boolean;
  /**
   * A command that runs node for us and then becomes it (`exec`), e.g. `['ip', 'netns', 'exec', NAME]`:
   * the child's pid is still node's, so signals reach it.
   * @default none: node is started directly
   */
  command?: string[];
  /**
   * Start the orchestrator's or the worker's CLI from its sources under tsx even where
   * {@link spawnProcess} would start it from its bundle (`cliBundle`): for what only the sources
   * show, such as which files and packages a start loads (`packagesLoadedBy`).
   * @default false
   */
  sources?: boolean;
}

export interface RunningProcess {
  child: ChildProcess;
  /** Everything written to stdout so far. */
  stdout(): string;
  /** Everything written to stderr so far. */
  stderr(): string;
  /**
   * The lines written to stderr so far, each parsed as JSON: the log lines of a process that
   * logs JSON there (its `level` by name, as both servers log it: `'info'`, `'warn'`; `msg` and
   * the other fields). Throws on a line that is not JSON, a blank one (or an empty stderr)
   * included.
   */
  stderrLogs(): { level: string; msg: string; [field: string]: unknown }[];
  /** stdout and stderr interleaved in the order they arrived. */
  output(): string;
  /**
   * The exit code (null when killed by a signal), once the process exited and its output is
   * complete (the 'close' event: processes it started that share its stdout/stderr also count).
   */
  exited: Promise<number | null>;
  /** The first stdout line, without its newline; rejects if the process exits before printing one. */
  firstLine(): Promise<string>;
  /**
   * The URL of the first stdout line matching `/listening on (http\S+)/`; rejects, with the
   * output so far, if the process exits first.
   */
  listeningUrl(): Promise<string>;
  /**
   * Sends `signal` and resolves to the exit code and how long the exit took. With
   * `killAfterMs`, sends SIGKILL if the process is still running after that long.
   */
  stop(signal?: NodeJS.Signals, killAfterMs?: number): Promise<{ code: number | null; ms: number }>;
}

const spawned: ChildProcess[] = [];
const isRunning = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

/** The environment a process started with these options gets: this one's (less `MPD_*` and `INIT_CWD` with `cleanEnv`), then `env`. */
export function environmentFor(options: Pick<SpawnOptions, 'env' | 'cleanEnv'>): NodeJS.ProcessEnv {
  const inherited = options.cleanEnv
    ? Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('MPD_') && key !== 'INIT_CWD'))
    : process.env;
  return { ...inherited, ...options.env };
}

/**
 * `@mpd/cli`'s `tsx-loader.mjs` (a file URL): tsx's two loaders registered as `--import tsx`
 * registers them, from the same tsx (resolved beside that file), without tsx's ES-module build on
 * the main thread (round V, `docs/round-v/v5.md`; round X, `docs/round-x/x1.md`: CPU a start).
 * The same registration as `mpd`'s (`registerTypeScript`) and the module hosts' preload: the
 * same code text, fingerprints and digests as under `--import tsx`
 * (`packages/cli/test/tsx-loader.spec.ts`).
 */
export const TSX_LOADER = new URL('../../cli/tsx-loader.mjs', import.meta.url).href;

/**
 * Runs `node <testNodeFlags()> --import <TSX_LOADER> <script> ...args` with stdout and stderr
 * collected (see `TEST_NODE_FLAGS`, `node-flags.ts`; {@link TSX_LOADER}). The orchestrator's and
 * the worker's CLI (`script` = `cliOf('orchestrator' | 'worker')`) start from a bundle of their
 * sources instead, `node <testNodeFlags()> <bundle> ...args` (`cliBundle`, round Z: a third of
 * the CPU of a start), unless `MPD_TEST_CLI_SOURCES=1`.
 */
export function spawnProcess(options: SpawnOptions): RunningProcess {
  const [file, ...prefix] = [...(options.command ?? []), process.execPath];
  const bundled = bundlesCliStarts() && !options.sources ? bundledCommandOf(options.script) : undefined;
  const nodeArgs =
    bundled === undefined
      ? [...testNodeFlags(), '--import', TSX_LOADER, options.script, ...(options.args ?? [])]
      : [...testNodeFlags(), cliBundle(bundled), ...(options.args ?? [])];
  const child = spawn(file!, [...prefix, ...nodeArgs], {
    cwd: options.cwd,
    env: environmentFor(options),
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group (and session): a test can tell what it left behind by group, and
    // {@link killLeftovers} kills the group, not the test runner's.
    detached: true,
  });
  spawned.push(child);
  let stdout = '';
  let stderr = '';
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    output += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    output += chunk.toString();
  });
  // 'close' comes after 'exit' once stdout and stderr are drained, so the output is complete.
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));

  /** Resolves with what `pick` returns for the first complete stdout line it accepts. */
  const waitForLine = <T>(pick: (line: string) => T | undefined, failure: (code: number | null) => string) =>
    new Promise<T>((resolve, reject) => {
      const check = (): boolean => {
        for (const line of stdout.split('\n').slice(0, -1)) {
          const picked = pick(line);
          if (picked !== undefined) {
            child.stdout!.off('data', check);
            resolve(picked);
            return true;
          }
        }
        return false;
      };
      if (check()) return;
      child.stdout!.on('data', check);
      void exited.then((code) => {
        if (!check()) reject(new Error(failure(code)));
      });
    });

  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    stderrLogs: () =>
      stderr
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { level: string; msg: string }),
    output: () => output,
    exited,
    firstLine: () =>
      waitForLine(
        (line) => line,
        (code) => `exited ${code} before printing: ${stderr}`,
      ),
    listeningUrl: () =>
      waitForLine(
        (line) => /listening on (http\S+)/.exec(line)?.[1],
        (code) => `${options.script} exited with ${code} before listening:\n${output}`,
      ),
    async stop(signal = 'SIGTERM', killAfterMs) {
      const started = Date.now();
      child.kill(signal);
      const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      const code = await exited;
      clearTimeout(timer);
      return { code, ms: Date.now() - started };
    },
  };
}

/** Which bundled CLI `script` is the development entry of (`cliOf`), if any. */
function bundledCommandOf(script: string): BundledCommand | undefined {
  for (const command of ['worker', 'orchestrator'] as const) if (script === cliOf(command)) return command;
  return undefined;
}

/** SIGKILL to group `pgid`; nothing if it has no process left. */
function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // ESRCH: the group is gone
  }
}

/**
 * SIGKILLs every process {@link spawnProcess} started that is still running, with its tree: its
 * process group (also when it exited itself: what it left in its group), and every
 * descendant's group (a worker's module hosts run in groups of their own). For `afterAll` or
 * `afterEach`: passing tests stop their processes; this stops those a failing test left.
 */
export function killLeftovers(): void {
  const ownGroup = processGroupOf(process.pid);
  for (const child of spawned.splice(0)) {
    if (child.pid === undefined) continue;
    const groups = new Set(isRunning(child) ? processTree(child.pid).map((entry) => entry.pgid) : []);
    groups.add(child.pid);
    if (isRunning(child)) child.kill('SIGKILL');
    for (const pgid of groups) if (pgid !== ownGroup && pgid > 1) killGroup(pgid);
  }
}

/**
 * The absolute path of a command's entry in this workspace, for {@link spawnProcess} (which runs
 * it under tsx): `'mpd'` the `mpd` entry of `packages/cli`'s `bin` (run as
 * `spawnProcess({ script: cliOf('mpd'), args: ['worker', …] })`, the command users run);
 * `'orchestrator'` and `'worker'` their packages' development entries (`src/cli/main.ts`, what
 * `pnpm orchestrator` / `pnpm worker` run: the same command, relative paths read against
 * `INIT_CWD` when it is set). Found from the package.json files (read, never imported: the kit
 * runs the CLI, it does not load it).
 * @throws Error when `packages/cli/package.json` declares no `bin` `mpd`.
 */
export function cliOf(command: 'mpd' | 'orchestrator' | 'worker'): string {
  if (command !== 'mpd') return fileURLToPath(new URL(`../../${command}/src/cli/main.ts`, import.meta.url));
  const packageDir = new URL('../../cli/', import.meta.url);
  const { bin } = JSON.parse(readFileSync(new URL('package.json', packageDir), 'utf8')) as {
    bin?: Record<string, string>;
  };
  const script = bin?.mpd;
  if (script === undefined) throw new Error('packages/cli/package.json has no bin "mpd"');
  return fileURLToPath(new URL(script, packageDir));
}
