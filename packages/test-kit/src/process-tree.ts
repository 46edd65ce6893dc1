/**
 * What a process left behind, read from Linux's `/proc`: a test watches the tree of a process
 * it started (the process, its children and theirs, by parent chain) while it runs, and once it
 * exited asks which of them still run. A process that left the tree meanwhile — reparented to
 * init when its parent exited — is still found: by its pid and start time, and by its process
 * group (a module host's group holds every process a module started, also those whose parent
 * is gone).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** One process as `/proc/PID/stat` shows it. */
export interface ProcessEntry {
  pid: number;
  /** The parent's pid. */
  ppid: number;
  /** The process group. */
  pgid: number;
  /** Its start, in clock ticks since boot: with the pid, it tells the process from a later one given the same pid. */
  start: number;
  /** The command name (`comm`, at most 15 characters): `node`, `sleep`, … */
  command: string;
  /** `/proc/PID/cmdline`, its arguments joined by spaces (empty once the process is a zombie). */
  commandLine: string;
}

/** Whether this machine has a Linux `/proc`; the watchers below see nothing where it has not. */
export const HAS_PROC = (() => {
  try {
    readFileSync('/proc/self/stat', 'latin1');
    return true;
  } catch {
    return false;
  }
})();

/** The process `pid` (undefined once it is gone, or a zombie: those run nothing and only wait to be reaped). */
function readEntry(pid: number): ProcessEntry | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  const close = stat.lastIndexOf(')');
  // After the command name: state, ppid, pgrp, session, …; starttime is the 22nd field of the line.
  const fields = stat.slice(close + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  let commandLine = '';
  try {
    commandLine = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').join(' ').trim();
  } catch {
    // gone meanwhile
  }
  return {
    pid,
    ppid: Number(fields[1]),
    pgid: Number(fields[2]),
    start: Number(fields[19]),
    command: stat.slice(stat.indexOf('(') + 1, close),
    commandLine,
  };
}

/** The process group of `pid` (undefined once it is gone, or where there is no `/proc`). */
export function processGroupOf(pid: number): number | undefined {
  return readEntry(pid)?.pgid;
}

/** Every running process of the machine (zombies left out). */
export function listProcesses(): ProcessEntry[] {
  if (!HAS_PROC) return [];
  const entries: ProcessEntry[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const entry = readEntry(Number(name));
    if (entry) entries.push(entry);
  }
  return entries;
}

/** `rootPid` and its descendants (by parent chain) among `processes`; [] when it is not running. */
export function processTree(rootPid: number, processes: ProcessEntry[] = listProcesses()): ProcessEntry[] {
  const byParent = new Map<number, ProcessEntry[]>();
  for (const entry of processes) byParent.set(entry.ppid, [...(byParent.get(entry.ppid) ?? []), entry]);
  const root = processes.find((entry) => entry.pid === rootPid);
  if (!root) return [];
  const tree = [root];
  for (let index = 0; index < tree.length; index++) tree.push(...(byParent.get(tree[index]!.pid) ?? []));
  return tree;
}

/** A watch on a process's tree (see {@link watchProcessTree}). */
export interface ProcessTreeWatch {
  /** Every process seen in the tree so far (the root included), by pid and start. */
  seen(): ProcessEntry[];
  /**
   * Takes one more look, then stops watching and answers what still runs of what was seen:
   * the processes seen (same pid and start), those in a process group one of them was in (the
   * test runner's own group excepted), and their descendants. [] when nothing is left.
   */
  leftovers(): ProcessEntry[];
}

/**
 * Watches the tree of `rootPid` every `intervalMs` (and at each {@link ProcessTreeWatch.leftovers}),
 * remembering every process seen in it: call it while the process runs (right after starting it),
 * and `leftovers()` once it exited.
 * @default intervalMs 100
 */
export function watchProcessTree(rootPid: number, intervalMs = 100): ProcessTreeWatch {
  const seen = new Map<string, ProcessEntry>();
  const look = (processes: ProcessEntry[]): void => {
    for (const entry of processTree(rootPid, processes)) seen.set(`${entry.pid}:${entry.start}`, entry);
  };
  look(listProcesses());
  const timer = setInterval(() => look(listProcesses()), intervalMs);
  timer.unref();
  const ownGroup = processGroupOf(process.pid);
  return {
    seen: () => [...seen.values()],
    leftovers: () => {
      clearInterval(timer);
      const processes = listProcesses();
      look(processes);
      const groups = new Set([...seen.values()].map((entry) => entry.pgid).filter((pgid) => pgid !== ownGroup));
      const left = processes.filter((entry) => seen.has(`${entry.pid}:${entry.start}`) || groups.has(entry.pgid));
      const found = new Map(left.map((entry) => [entry.pid, entry]));
      for (const entry of left) for (const below of processTree(entry.pid, processes)) found.set(below.pid, below);
      return [...found.values()];
    },
  };
}
