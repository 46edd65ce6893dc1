/**
 * Commands run in the test's project outside the workspace, as a user runs them in a shell:
 * `npx mpd …`, `node_modules/.bin/mpd …`, `npm install`. Their environment is this process's
 * without what pnpm, npm and the test runner put there (`npm_*` — npm reads `npm_config_*` as
 * its own settings, and `npm_lifecycle_event` tells `mpd` it runs under an npm script — `MPD_*`,
 * `INIT_CWD`), plus what the test gives.
 */
import { type ChildProcess, spawn } from 'node:child_process';

export function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const kept = Object.entries(process.env).filter(
    ([key]) => !/^npm_/i.test(key) && !key.startsWith('MPD_') && key !== 'INIT_CWD' && !key.startsWith('VITEST'),
  );
  return { ...Object.fromEntries(kept), ...extra };
}

export interface ProjectProcess {
  child: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  /**
   * The exit code, or the signal that ended it, once it exited (its 'exit': processes it started
   * may hold its stdout and stderr open for longer, an orphan for ever).
   */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first match of `pattern` in stdout; rejects if the process exits first. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
}

const started: ChildProcess[] = [];

/**
 * Starts `command args…` in `cwd`, in a process group of its own (as a shell's job or a
 * service manager's unit: a signal to the group does not reach the test runner).
 */
export function startInProject(
  cwd: string,
  command: string,
  args: string[],
  env: Record<string, string> = {},
): ProjectProcess {
  const child = spawn(command, args, { cwd, env: userEnv(env), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    pid: child.pid!,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const match = pattern.exec(stdout);
          if (match) {
            child.stdout!.off('data', check);
            resolve(match);
          } else if (done) {
            reject(new Error(`${command} ${args.join(' ')} exited before printing ${pattern}:\n${stdout}\n${stderr}`));
          }
        };
        child.stdout!.on('data', check);
        void exited.then(check);
        check();
      }),
  };
}

/** SIGKILLs the process group of every process {@link startInProject} started (for afterAll). */
export function killProjectProcesses(): void {
  for (const child of started.splice(0)) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // The group is gone already.
    }
  }
}
