/**
 * Process groups: how the worker stops everything a module started. A module host is started
 * in its own process group (`detached: true`), and the processes a module starts stay in it
 * unless they leave on purpose (`setsid`, `detached: true`), so signalling the group reaches
 * children and grandchildren, also those whose parent already exited.
 */
import { openSync, readdirSync, readFileSync, readSync } from 'node:fs';
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

/** Whether any process of group `pgid` still runs (`kill(-pgid, 0)` where there is no `/proc`). */
export function groupAlive(pgid: number): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
  const members = groupMembers(pgid);
  if (members) return members.length > 0;
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
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

/** The pids of `pid`'s direct children, from `/proc` (Linux); [] where that cannot be read. */
export function childrenOf(pid: number): number[] {
  try {
    return parsePids(readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1'));
  } catch {
    return [];
  }
}

/**
 * How many direct children this process has, read again at each call from a `/proc` file kept
 * open (one `pread`, about a tenth of opening it each time: a module host asks after every
 * module); 0 where there is no `/proc`.
 */
export function ownChildCounter(): () => number {
  let fd: number;
  try {
    fd = openSync(`/proc/${process.pid}/task/${process.pid}/children`, 'r');
  } catch {
    return () => 0;
  }
  const buffer = Buffer.alloc(4_096);
  return () => {
    try {
      // A list longer than the buffer still shows at least one pid.
      const length = readSync(fd, buffer, 0, buffer.length, 0);
      // Empty after almost every module: no text to make and split then.
      return length === 0 ? 0 : parsePids(buffer.toString('latin1', 0, length)).length;
    } catch {
      return 0;
    }
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
