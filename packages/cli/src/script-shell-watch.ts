/**
 * Stopping `mpd` when npm's shell goes: `npx mpd worker` and `npm run` / `npm start` run `mpd`
 * as `npm exec → sh -c 'mpd' worker … → node mpd`. npm passes SIGTERM and SIGINT on to its child,
 * the shell, and the shell (dash, Debian's and Ubuntu's `sh`) dies of a SIGTERM without passing
 * it on: the server was left running, orphaned, still registered (measured with npm 10.9 and
 * 11.19; see the README's "Install in your own repository"). So under an npm script (npm sets
 * `npm_lifecycle_event`, `npx` for `npx` / `npm exec`), `mpd` watches its parent, and once it is
 * gone sends itself SIGTERM: the server stops exactly as on a SIGTERM of its own (the worker
 * drains).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/** How often the parent is checked (ms): a `getppid()`, cheap; the drain starts at most this late. */
export const SCRIPT_SHELL_CHECK_MS = 250;

/** The command names of the shells npm, pnpm and yarn run scripts with (`script-shell`). */
const SHELLS = new Set(['sh', 'dash', 'bash', 'ash', 'zsh', 'busybox']);

/**
 * Whether process `pid` is a shell, by its command name (Linux's /proc); true where that cannot
 * be read (no /proc: the parent is then taken for npm's shell).
 */
function isShell(pid: number): boolean {
  try {
    return SHELLS.has(readFileSync(`/proc/${pid}/comm`, 'utf8').trim());
  } catch {
    return true;
  }
}

/**
 * Under an npm (or pnpm, yarn) script or `npx`, and started by a shell (the script's: not, say, a
 * launcher of the user's that starts `mpd` and exits on purpose), calls `onGone` (once) when
 * this process's parent exits, i.e. when it is re-parented; does nothing otherwise. Not when this
 * process received SIGTERM or SIGINT itself: a SIGTERM to the whole process group (systemd's
 * default `KillMode`, `kill -- -PGID`) also ends npm's shell, and a second signal would turn the
 * server's drain into a cancel. The timer does not keep the process alive.
 * @param service the `service` field of the log line written to stderr when the parent goes,
 *   the subcommand's own (`mpd-worker`), so it reads as one of the server's lines
 * @param onGone @default sends this process SIGTERM
 */
export function stopWhenScriptShellExits(
  service: string,
  onGone: () => void = () => process.kill(process.pid, 'SIGTERM'),
  env: NodeJS.ProcessEnv = process.env,
): void {
  if (env.npm_lifecycle_event === undefined) return;
  const parent = process.ppid;
  if (!isShell(parent)) return;
  let signalled = false;
  const noticeSignal = (signal: NodeJS.Signals): void => {
    signalled = true;
    // The only listener (the server has not installed its own yet): do what node does without one.
    if (process.listenerCount(signal) === 1) {
      process.off(signal, noticeSignal);
      process.kill(process.pid, signal);
    }
  };
  process.on('SIGTERM', noticeSignal).on('SIGINT', noticeSignal);
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    // One more interval, so that a signal that came with the parent's end (Ctrl-C) is handled first.
    setTimeout(() => {
      if (signalled) return;
      // One JSON log line, as the servers write theirs (level by name, their base fields).
      const line = {
        level: 'warn',
        time: Date.now(),
        service,
        pid: process.pid,
        hostname: hostname(),
        parentPid: parent,
        msg: `the process that started this one (pid ${parent}, the shell of "npm ${env.npm_command ?? 'run'}") exited: stopping as on SIGTERM`,
      };
      process.stderr.write(`${JSON.stringify(line)}\n`);
      onGone();
    }, SCRIPT_SHELL_CHECK_MS).unref();
  }, SCRIPT_SHELL_CHECK_MS);
  timer.unref();
}
