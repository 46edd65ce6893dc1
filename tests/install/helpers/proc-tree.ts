/**
 * Processes as Linux's /proc shows them, to check that a stopped command left nothing behind.
 * A process is named by its pid and its start time (so a pid the kernel reused is another one);
 * a zombie (`Z`, exited but not yet reaped: a re-parented process whose new parent, e.g. a
 * container's PID 1, does not reap) counts as gone.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcEntry {
  pid: number;
  ppid: number;
  /** Process group. */
  pgid: number;
  /** One letter: R, S, D, Z, T, … */
  state: string;
  /** Clock ticks after boot: with the pid, names the process. */
  startTime: string;
  /** The command line, for messages. */
  command: string;
}

/** One process's entry; undefined when it is gone (or became unreadable on the way). */
export function procEntry(pid: number): ProcEntry | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime
    // stime cutime cstime priority nice num_threads itrealvalue starttime …": comm may hold
    // spaces and parentheses, so the fields are counted after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    let command = '';
    try {
      command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    } catch {
      // Gone between the two reads: its stat is enough.
    }
    return {
      pid,
      ppid: Number(fields[1]),
      pgid: Number(fields[2]),
      state: fields[0]!,
      startTime: fields[19]!,
      command,
    };
  } catch {
    return undefined;
  }
}

/** Every process now. */
export function allProcesses(): ProcEntry[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map((name) => procEntry(Number(name)))
    .filter((entry): entry is ProcEntry => entry !== undefined);
}

/**
 * `pid` and its descendants now (children, their children, …), and every process of the
 * process groups they lead (a module host leads a group of its own, where its modules'
 * processes are).
 */
export function processTree(pid: number): ProcEntry[] {
  const all = allProcesses();
  const tree = new Map<number, ProcEntry>();
  const root = all.find((entry) => entry.pid === pid);
  if (!root) return [];
  const pending = [root];
  for (let entry = pending.pop(); entry; entry = pending.pop()) {
    if (tree.has(entry.pid)) continue;
    tree.set(entry.pid, entry);
    const { pid: parent } = entry;
    pending.push(...all.filter((other) => other.ppid === parent || (other.pgid === parent && other.pid !== parent)));
  }
  return [...tree.values()];
}

/** Whether this very process (same pid, same start time) still runs (a zombie does not). */
export function isRunning(entry: ProcEntry): boolean {
  const now = procEntry(entry.pid);
  return now !== undefined && now.startTime === entry.startTime && now.state !== 'Z';
}

/** Those of `entries` still running, and every running process of the groups they led. */
export function leftOf(entries: readonly ProcEntry[]): ProcEntry[] {
  const groups = new Set(entries.filter((entry) => entry.pgid === entry.pid).map((entry) => entry.pgid));
  const left = new Map(entries.filter(isRunning).map((entry) => [entry.pid, entry]));
  for (const entry of allProcesses()) {
    if (groups.has(entry.pgid) && entry.state !== 'Z') left.set(entry.pid, entry);
  }
  return [...left.values()];
}
