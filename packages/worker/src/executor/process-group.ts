/**
 * Process groups: how the worker stops everything a module started. A module host is started
 * in its own process group (`detached: true`), and the processes a module starts stay in it
 * unless they leave on purpose (`setsid`, `detached: true`), so signalling the group reaches
 * children and grandchildren, also those whose parent already exited.
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** Whether this machine has a Linux `/proc` to list a group's processes from. */
const HAS_PROC = (() => {
  try {
    readFileSync('/proc/self/stat', 'latin1');
    return true;
  } catch {
    return false;
  }
})();

/** The fields of `/proc/PID/stat` after the command name (which may hold spaces and parentheses). */
function statFields(pid: string | number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // gone meanwhile
  }
}

/**
 * The pids of the processes of group `pgid` that still run, from `/proc` (zombies are left out:
 * they run nothing, and one whose parent does not reap it would never go away); `undefined`
 * where there is no `/proc`.
 */
export function groupMembers(pgid: number): number[] | undefined {
  if (!HAS_PROC) return undefined;
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const first = entry.charCodeAt(0);
    if (first < 48 || first > 57) continue; // not a pid
    const fields = statFields(entry);
    // state is the first field, pgrp the third.
    if (fields && Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') members.push(Number(entry));
  }
  return members;
}

/**
 * Whether any process of group `pgid` still runs (`kill(-pgid, 0)` where there is no `/proc`).
 * While the group's leader (the process whose pid is `pgid`: a module host) runs and is still in
 * it, it is, without a walk of `/proc` (one read of the leader's `stat` instead of one per process
 * on the machine: `stopProcessGroup` polls this until the group is gone, every few ms at first, for
 * each host a worker stops; 0.3 CPU-s of one worker's profile at close, round AD). The kernel
 * gives no new process a pid that is still a group's id, so a process with pid `pgid` in group
 * `pgid` is its leader. Once the leader is gone (or a zombie), `kill(-pgid, 0)` tells whether any
 * process is left in the group at all, and only if one is (it may be a zombie, which runs nothing)
 * a walk tells whether it runs.
 * @param members how the group's processes are listed @default {@link groupMembers} (tests count the walks)
 */
export function groupAlive(pgid: number, members: (pgid: number) => number[] | undefined = groupMembers): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
  // state is the first field after the name, pgrp the third.
  const leader = HAS_PROC ? statFields(pgid) : undefined;
  if (leader && leader[0] !== 'Z' && leader[0] !== 'X' && Number(leader[2]) === pgid) return true;
  // No process at all in the group, zombies included (ESRCH): gone, without a walk either. The
  // usual end of a stop: the host exited and was reaped, and took its processes with it.
  if (groupEmpty(pgid)) return false;
  // Something is in the group: a walk tells a running process from a zombie; where there is no
  // /proc to walk, it counts as running.
  return members(pgid)?.length !== 0;
}

/**
 * Whether group `pgid` (> 1) has no process at all, zombies included: `kill(-pgid, 0)` failed with
 * ESRCH. EPERM (a process we may not signal: a setuid program a module ran) is one that is there.
 */
function groupEmpty(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Sends `signal` to every process of group `pgid`; false when the group has none left. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  // Never 0, 1 or below: `kill(-1)` signals every process we may signal, `kill(0)` our own group.
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: nothing left (EPERM cannot happen for our own children)
  }
}

/** The pids of `pid`'s direct children (of its main thread), from `/proc` (Linux); [] where that cannot be read. */
export function childrenOf(pid: number): number[] {
  try {
    return parsePids(readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1'));
  } catch {
    return [];
  }
}

/** A process as `/proc` names it for good: its pid and its start time (clock ticks after boot), so that a reused pid is another process. */
const processKey = (pid: number): string | undefined => {
  const fields = statFields(pid);
  return fields && `${pid}@${fields[19]}`; // starttime is the 22nd field, the 20th after the name
};

/**
 * How a module host finds the processes its module left running (the check after every module;
 * a host with any is not reused: the worker stops its group). Linux only: where there is no
 * `/proc` (its files are not found: `ENOENT`), `count()` says 0 (none are checked); where `/proc`
 * fails otherwise, `null` (unknown: not reused).
 *
 * - **Children of every thread.** A process started from a worker thread (a `Worker` of the
 *   module or one the pipeline file started at load, tsx's loader thread, a native addon's
 *   thread) is a child of that thread, listed in `/proc/PID/task/TID/children` of that thread
 *   alone: the main thread's list missed it (round J). Every thread's list is read, whatever it
 *   was doing at {@link LeftoverCheck.settle} (round K's review: reading only the threads not
 *   asleep in `futex` then missed a child of a load-time `Worker` blocked in `Atomics.wait`,
 *   and with it the walk, so the host was reused while the child ran). Each list is read from a
 *   file kept open (one `pread` each, about 0.5 µs; a host has 11–13 threads); the list of
 *   threads is read again only when their number changed or a thread kept open is gone (a read
 *   of a gone thread's file fails with `ESRCH` on some kernels, even when its id was reused). A
 *   thread whose list cannot be opened or read because it ended meanwhile (`ENOENT`, `ESRCH`)
 *   is skipped; any other error (`EMFILE`, `EIO`, …) makes {@link LeftoverCheck.count} say `null`.
 * - **Orphaned descendants** (`sh -c 'server &'`: the shell exits, its child is given to init):
 *   no thread lists them any more, but they stay in the host's process group, which only a walk
 *   of `/proc` lists (about 1 ms for 130 processes; more on a busy machine). That walk is made
 *   only when some process may have been started since the last check: a child is listed now,
 *   or the host reaped one, which its `cminflt`/`cmajflt` (`/proc/self/task/PID/stat`: the page faults of
 *   the children it waited for, theirs included) tells: every process that started another one
 *   took a page fault (a `fork` write-protects its memory, an `exec` loads its program by
 *   faults), so an orphan's parent, once reaped, always moves that count. A module that starts
 *   no process costs one more `pread` (that stat) and no walk. A listed child that is a
 *   zombie (a worker thread's child that outlived its thread stays unreaped, listed for good)
 *   runs nothing and starts no walk (before: every later check walked `/proc`, about 6 ms).
 * - **The host's own processes** (tsx's esbuild service, started by its loader thread when a file
 *   is not in tsx's cache, which lives as long as the host) are those of its group when
 *   {@link LeftoverCheck.settle} is called, once the pipeline is loaded: never counted.
 * - **No process made since two clean checks: no list read.** Every process (and thread)
 *   made in the host's pid namespace, or in one below it, takes the next pid of that namespace,
 *   so its last pid (`/proc/sys/kernel/ns_last_pid`, Linux ≥ 3.3 with checkpoint/restore: one
 *   `pread` of a few bytes) moves whenever anything is made there. It is read before each check:
 *   when two full checks in a row (`settle` counts as one) found nothing and read the same last
 *   pid, and it is still there, no process was made since, so none runs that the host could count
 *   (a process that ran then and was the host's own, or ended, cannot be a leftover now): 0,
 *   without reading the threads' lists (a host has 11–13 threads; the full check was about 43 %
 *   of a host's `execute` in one profile at load 19–25, docs/round-n/n1.md). Why two: the kernel
 *   gives a new process its pid a little before it adds it to its parent's children list, so a
 *   check made in that gap reads the new last pid and misses the child; the next check, made in
 *   full, finds it (a fork in flight during a check is found by the next one, as before round
 *   N). Anything made in the namespace moves it, and then the check is made in full. Where the
 *   file is missing or cannot be read, every check is made in full.
 *   What could fool it: a module that makes exactly as many processes as the namespace has pids
 *   (`pid_max`: 32,768 or 4,194,304) without its host reaping one, so that the last pid comes round
 *   to where it was; or one that sets it back, or makes a process with a pid of its choosing
 *   (`clone3`'s `set_tid`), which leaves it where it was (both need `CAP_CHECKPOINT_RESTORE` or
 *   `CAP_SYS_ADMIN`).
 *
 * Not found: a process that left the group (`setsid`, `detached: true`) and whose parent is gone
 * (see the README's "What isolation does not cover").
 */
export interface LeftoverCheck {
  /** Takes the host's own processes and its children's fault count as they are now (once the pipeline is loaded). */
  settle(): void;
  /**
   * How many processes other than the host's own run in its group or as its children now
   * (zombies left out); 0 without `/proc`; `null` when an unexpected error (a failed `/proc`
   * read or walk) left it unknown: the host is then treated as one with leftovers (not reused).
   */
  count(): number | null;
}

/**
 * How {@link leftoverCheck} opens and reads the `/proc` files it keeps open (the main thread's
 * `stat`, each thread's `children` list, the namespace's last pid): the seam through which tests
 * make them fail, or give a last pid of their own.
 */
export interface ProcFiles {
  /** Opens `path` for reading; returns its fd; throws an `ErrnoException`. @default `openSync(path, 'r')` */
  open(path: string): number;
  /**
   * Reads the file open as `fd` from its start into `buffer` (at most `buffer.length` bytes);
   * returns the number of bytes read; throws an `ErrnoException`.
   * @default `readSync(fd, buffer, 0, buffer.length, 0)` (one `pread`)
   */
  read(fd: number, buffer: Buffer): number;
}

/** The last pid given out in this process's pid namespace (see {@link leftoverCheck}'s "No process made"). */
const LAST_PID_PATH = '/proc/sys/kernel/ns_last_pid';

const procFiles: ProcFiles = {
  open: (path) => openSync(path, 'r'),
  read: (fd, buffer) => readSync(fd, buffer, 0, buffer.length, 0),
};

/** Whether a `/proc` open or read failed because the thread (or process) it names ended: `ENOENT`, `ESRCH`. */
const threadEnded = (error: unknown): boolean => {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ESRCH';
};

/**
 * Makes this process's {@link LeftoverCheck} (module hosts: one, at start).
 * @param members how the group's processes are listed @default {@link groupMembers} (a walk of `/proc`; tests count the walks)
 * @param files how the `/proc` files kept open are opened and read @default `openSync` / `readSync` (tests make them fail)
 */
export function leftoverCheck(
  members: (pgid: number) => number[] | undefined = groupMembers,
  files: ProcFiles = procFiles,
): LeftoverCheck {
  const pid = process.pid;
  let statFd: number;
  try {
    // The main thread's stat: its children's page faults and the number of threads are the
    // process's (they are kept per process), and the kernel makes it without summing every
    // thread's times and faults as for `/proc/PID/stat` (3.0 against 3.6 µs a read with 16
    // threads, round K).
    statFd = files.open(`/proc/${pid}/task/${pid}/stat`);
  } catch (error) {
    // No `/proc` (not Linux): nothing is checked, every count is 0. Any other failure (`EMFILE`,
    // `EACCES`): `/proc` is there but unreadable, so what a module leaves is unknown (null).
    const unknown = (error as NodeJS.ErrnoException | undefined)?.code !== 'ENOENT';
    return { settle: () => undefined, count: () => (unknown ? null : 0) };
  }
  const buffer = Buffer.alloc(4_096);
  /** The open `children` file of each thread, by thread id. */
  let threads = new Map<string, number>();
  let own = new Set<string>();
  let faults = 0;
  /** Set when {@link LeftoverCheck.settle} failed: no check can tell a leftover from the host's own. */
  let unsettled = false;

  /** `[children's page faults, number of threads]` from `/proc/self/task/PID/stat` (the process's both). */
  const ownStat = (): [number, number] => {
    const length = files.read(statFd, buffer);
    const text = buffer.toString('latin1', 0, length);
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ', 18);
    // cminflt, cmajflt: the 11th and 13th fields; num_threads the 20th (the 9th, 11th, 18th after the name).
    return [Number(fields[8]) + Number(fields[10]), Number(fields[17])];
  };
  /**
   * Lists the threads again and opens the children list of each new one.
   * @throws the error of an open that failed other than for a thread that ended meanwhile
   *   (`ENOENT`, `ESRCH`): the files opened so far are kept, the others are not read.
   */
  const openThreads = (): void => {
    const opened = new Map<string, number>();
    let failure: unknown;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const fd = threads.get(tid);
      if (fd !== undefined) {
        opened.set(tid, fd);
        threads.delete(tid);
        continue;
      }
      try {
        opened.set(tid, files.open(`/proc/${pid}/task/${tid}/children`));
      } catch (error) {
        if (!threadEnded(error)) failure ??= error; // else: ended meanwhile
      }
    }
    for (const fd of threads.values()) closeSync(fd);
    threads = opened;
    if (failure !== undefined) throw failure;
  };
  /**
   * The pids listed as children of any thread; undefined when a thread kept open is gone (read
   * the list again).
   * @throws the error of a read that failed other than for a thread that ended (`ENOENT`,
   *   `ESRCH`): what runs is not known (count says null).
   */
  const readChildren = (): number[] | undefined => {
    let children: number[] | undefined;
    for (const fd of threads.values()) {
      let length: number;
      try {
        length = files.read(fd, buffer);
      } catch (error) {
        if (threadEnded(error)) return undefined; // that thread ended
        throw error;
      }
      // Empty after almost every module: no text to make and split then. A list longer than
      // the buffer still shows at least one pid.
      if (length > 0) (children ??= []).push(...parsePids(buffer.toString('latin1', 0, length)));
    }
    return children ?? [];
  };
  const children = (threadCount: number): number[] => {
    if (threadCount !== threads.size) openThreads();
    return readChildren() ?? (openThreads(), readChildren() ?? []);
  };
  /** A listed child as `/proc` names it for good, or undefined when it is gone or a zombie (it runs nothing). */
  const runningKey = (child: number): string | undefined => {
    const fields = statFields(child);
    if (!fields || fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return `${child}@${fields[19]}`;
  };
  /** A listed child's key whatever its state (a zombie too); `undefined` once it is gone. */
  const listedKey = (child: number): string | undefined => {
    const fields = statFields(child);
    return fields ? `${child}@${fields[19]}` : undefined;
  };
  /** Listed children that are zombies join `own`: each starts at most one walk. */
  const rememberZombies = (listed: readonly number[]): void => {
    for (const child of listed) {
      const key = listedKey(child);
      if (key !== undefined && runningKey(child) === undefined) own.add(key);
    }
  };
  /** The processes running in the host's group or as its children, but the host and its own. */
  const others = (listed: readonly number[], again = true): string[] => {
    const found = new Set<string>();
    for (const member of members(pid) ?? []) {
      if (member === pid) continue;
      const key = processKey(member);
      if (key !== undefined && !own.has(key)) found.add(key);
    }
    // A child that left the group (setsid) is still found while it is a child.
    let ended = false;
    for (const child of listed) {
      const key = runningKey(child);
      if (key === undefined) {
        // Gone, or a zombie not already known (a known one ended before an earlier walk).
        const listedAs = listedKey(child);
        if (listedAs === undefined || !own.has(listedAs)) ended = true;
        continue;
      }
      if (!own.has(key)) found.add(key);
    }
    // A child that ended meanwhile may have started a process after the walk listed /proc and
    // then ended before the walk read its own state (`sh -c '(sleep 2; echo) &'` forks and exits
    // within about a millisecond of its start): neither was found (a new user's orphan, 4 runs
    // in 6, round J). It ended before a second walk lists /proc, which lists what it started.
    if (ended && again && found.size === 0) return others(listed, false);
    return [...found];
  };

  /** The namespace's last pid file, kept open; undefined where it cannot be opened (every check is made in full). */
  let lastPidFd: number | undefined;
  try {
    lastPidFd = files.open(LAST_PID_PATH);
  } catch {
    // Not there (a kernel without checkpoint/restore), or not readable: no shortcut.
  }
  const lastPidBuffer = Buffer.alloc(16);
  /** The namespace's last pid as its file says it (`"4860\n"`), or undefined when it cannot be read. */
  const lastPid = (): string | undefined => {
    if (lastPidFd === undefined) return undefined;
    try {
      return lastPidBuffer.toString('latin1', 0, files.read(lastPidFd, lastPidBuffer));
    } catch {
      return undefined;
    }
  };
  /**
   * The last pid read just before the last full check that found nothing (or `settle`);
   * undefined: the last one found something or failed.
   */
  let lastCleanBefore: string | undefined;
  /**
   * The last pid at which two full checks in a row (`settle` counts as one) found nothing: from
   * then on, a check that reads it again is 0 without the lists; undefined: none.
   */
  let quietSince: string | undefined;

  /** The full check (see {@link LeftoverCheck.count}). */
  const countAll = (): number | null => {
    try {
      const [childFaults, threadCount] = ownStat();
      const listed = children(threadCount);
      if (
        childFaults === faults &&
        listed.every((child) => {
          const key = listedKey(child);
          return key === undefined || own.has(key);
        })
      )
        return 0;
      const found = others(listed).length;
      // Only once the walk succeeded: a failed one is made again at the next check.
      faults = childFaults;
      // A new zombie child starts one walk (it may have started a process and ended before
      // being reaped, `sh -c '(…) &'`), not one per check while no thread reaps it (a worker
      // thread's child that outlived its thread): it is remembered once walked for.
      rememberZombies(listed);
      return found;
    } catch {
      // An unexpected error (a `/proc` read or walk that failed: EMFILE, ENOMEM, a changed
      // format): which processes run is not known. Before round K this said 0, which made such
      // a host look clean and reused it with whatever runs in its group; unknown now, so that
      // it is not reused (the worker stops its group).
      return null;
    }
  };

  return {
    settle() {
      const before = lastPid();
      quietSince = undefined;
      lastCleanBefore = undefined;
      try {
        const [childFaults, threadCount] = ownStat();
        const listed = children(threadCount);
        own = new Set();
        if (listed.length > 0 || childFaults > 0) own = new Set(others(listed));
        rememberZombies(listed);
        faults = childFaults;
        unsettled = false;
        // A first clean check: the shortcut waits for a second one (see count).
        lastCleanBefore = before;
      } catch {
        // Which processes are the host's own is not known: every check says unknown (null).
        unsettled = true;
      }
    },
    count() {
      if (unsettled) return null;
      // Read before the check: what is made after this read moves it for the next one.
      const before = lastPid();
      if (before !== undefined && before === quietSince) return 0;
      const found = countAll();
      // Only the second check in a row that found nothing at the same last pid lets the next
      // ones go without the lists. The kernel gives a new process its pid (moving the last pid) a
      // little before it adds it to its parent's children list: a check in between reads the new
      // last pid and no child. Trusting that one would make every later check 0 until something
      // else made a process; the next check, made in full, finds the child (as before round N).
      quietSince = found === 0 && before !== undefined && before === lastCleanBefore ? before : undefined;
      lastCleanBefore = found === 0 ? before : undefined;
      return found;
    },
  };
}

const parsePids = (text: string): number[] => text.split(' ').filter(Boolean).map(Number);

/**
 * A monotonic clock in ms that every process of the machine shares (`CLOCK_MONOTONIC`, through
 * `process.hrtime`): the worker tells its module hosts when their lease ends on it. Unlike
 * `performance.now()`, whose origin is the process's start, one process's reading means the
 * same instant in another.
 */
export function monotonicNow(): number {
  return Number(process.hrtime.bigint() / 1_000n) / 1_000;
}

/** How {@link stopProcessGroup} ended. */
export type GroupStop =
  /** Every process ended within the grace (or none was left). */
  | 'terminated'
  /** Some were still running when the grace ended: the group got SIGKILL. */
  | 'killed';

/**
 * Stops process group `pgid` the way Buildkite's agent stops a job (its `cancel-grace-period`):
 * SIGTERM to every process of the group (with SIGCONT, so that a stopped one gets it), then
 * SIGKILL to what is left once `graceMs` passed, or once `killBy()` (on {@link monotonicNow}'s
 * clock; read at each poll, as it may move) passed, if that comes first: the end of the
 * worker's lease, after which the orchestrator may run the module elsewhere. Resolves once no
 * process of the group runs.
 */
export async function stopProcessGroup(
  pgid: number,
  graceMs: number,
  killBy: () => number | undefined = () => undefined,
): Promise<GroupStop> {
  const graceEnd = monotonicNow() + graceMs;
  const deadline = (): number => Math.min(graceEnd, killBy() ?? Number.POSITIVE_INFINITY);
  if (!signalGroup(pgid, 'SIGTERM')) return 'terminated';
  signalGroup(pgid, 'SIGCONT');
  let killed = false;
  // Polled: the group's processes are not our children (only the host is), so nothing tells us
  // when they end. Quick at first (a host that only runs JavaScript exits at once), then every 100 ms.
  let pollMs = 5;
  while (groupAlive(pgid)) {
    if (!killed && monotonicNow() >= deadline()) {
      killed = true;
      signalGroup(pgid, 'SIGKILL');
    }
    await sleep(killed ? pollMs : Math.min(pollMs, Math.max(1, deadline() - monotonicNow())));
    pollMs = Math.min(pollMs * 2, 100);
  }
  return killed ? 'killed' : 'terminated';
}
