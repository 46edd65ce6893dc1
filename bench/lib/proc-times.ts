/**
 * CPU times and child processes read from /proc (Linux; elsewhere NaN and none). This file
 * imports only node's modules: `processes.ts` (the bench's processes) and `rss.ts` (its samplers,
 * which a bench pipeline's modules load too) both read processes through it.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** The CPU time process `pid` used so far (user + system, its reaped children not counted), ms, from /proc; NaN when it cannot be read. */
export function processCpuMs(pid: number): number {
  return processTimes(pid)?.ownMs ?? Number.NaN;
}

/**
 * The CPU times of process `pid` so far, ms, from `/proc/PID/stat`: `ownMs` (utime + stime, all
 * its threads) and `reapedMs` (cutime + cstime: the children it waited for, each with theirs);
 * undefined when it is gone or there is no /proc.
 */
export function processTimes(pid: number): { ownMs: number; reapedMs: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the command name (which is in parentheses and may hold spaces): utime, stime,
  // cutime and cstime are the 12th to 15th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ms = (index: number): number => (Number(fields[index]) / clockTicks()) * 1_000;
  return { ownMs: ms(11) + ms(12), reapedMs: ms(13) + ms(14) };
}

/**
 * The ids of the live child processes of `pid`, whichever of its threads started them (the
 * kernel lists a child under the thread that forked it: `/proc/PID/task/TID/children`); [] when
 * it is gone or there is no /proc.
 */
export function liveChildren(pid: number): number[] {
  let threads: string[];
  try {
    threads = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const children: number[] = [];
  for (const thread of threads) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${thread}/children`, 'utf8');
      for (const child of text.split(' ')) if (child.trim()) children.push(Number(child));
    } catch {
      // the thread ended meanwhile: a child it had was handed to another thread, read below or on a retry
    }
  }
  return children;
}

/** How many times {@link descendantsCpuMs} reads a tree again when it changed while it was read. */
const TREE_READS = 10;

/**
 * The CPU of every descendant of `pid` over its whole life so far, ms: the children `pid` already
 * reaped (its cutime + cstime, each with its own descendants: the kernel adds a child's times and
 * its reaped children's to its parent's when the parent waits for it) and each live child's own
 * CPU with its descendants counted the same way. A child that exits and is reaped while the tree
 * is read would be counted twice or not at all, so the tree is read again while `pid`'s reaped
 * figure moved (or a child vanished) during the read; NaN when `pid` is gone or the tree never
 * held still for {@link TREE_READS} reads.
 */
export function descendantsCpuMs(pid: number): number {
  for (let read = 0; read < TREE_READS; read++) {
    const before = processTimes(pid);
    if (before === undefined) return Number.NaN;
    let total = before.reapedMs;
    for (const child of liveChildren(pid)) {
      const own = processTimes(child)?.ownMs ?? Number.NaN;
      total += own + descendantsCpuMs(child);
    }
    if (!Number.isNaN(total) && processTimes(pid)?.reapedMs === before.reapedMs) return total;
  }
  return Number.NaN;
}

let ticks: number | undefined;
/** Clock ticks a second (`getconf CLK_TCK`; 100 when it cannot be read): the unit of /proc's CPU times. */
export function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/**
 * CPU time of every live thread of `pid` so far, ms (`/proc/PID/task/TID/schedstat`'s first
 * field: ns on a CPU, no clock-tick rounding); a thread that ends during the read is left out.
 * @throws when `/proc/PID/task` cannot be read (no such process)
 */
export function threadsCpuMs(pid: number): number {
  let nanoseconds = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      nanoseconds += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return nanoseconds / 1e6;
}
