/** Resident set sizes read from /proc while a benchmark runs (Linux; elsewhere every figure is NaN). */
import { readFileSync } from 'node:fs';
import { processCpuMs } from './proc-times.js';

/** The RSS of process `pid` now (VmRSS), bytes; 0 when it is gone or /proc cannot be read. */
export function rssBytes(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * The bytes process `pid` caused to be written to storage so far (`write_bytes` of /proc/PID/io:
 * counted when it dirties page-cache pages, every thread of it); 0 when it is gone or unreadable.
 */
export function writeBytes(pid: number): number {
  try {
    const match = /^write_bytes: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** What one group of processes did between `start` and `stop`, bytes. */
export interface RssFigures {
  /** The first non-zero sample (the group's RSS when sampling started, or when its first process appeared). */
  first: number;
  /** The highest sample. */
  peak: number;
  /** `peak - first`. */
  growth: number;
  /** CPU time the group used between its first and its last sample, ms (processes gone meanwhile count up to their last sample). */
  cpuMs: number;
  /** CPU time used in each {@link TIMELINE_BUCKET_MS} from the sampler's start, ms: the transfer's timeline. */
  cpuTimeline: number[];
  /**
   * Bytes the group wrote to storage between its first and its last sample ({@link writeBytes}; a
   * process gone meanwhile counts up to its last sample).
   */
  writtenBytes: number;
}

/** The width of one step of {@link RssFigures.cpuTimeline}, ms. */
export const TIMELINE_BUCKET_MS = 250;

/**
 * Samples the summed RSS of groups of processes every `intervalMs` (each group's pids are
 * asked for at every sample, so that module hosts started meanwhile are counted: a worker's are
 * `liveChildren(worker.pid)` of `proc-times.ts`, whichever of its threads started them).
 */
export class RssSampler {
  private readonly figures = new Map<string, { first: number; peak: number }>();
  /** Per group, the last CPU figure seen of each pid, and the CPU used so far in each timeline bucket. */
  private readonly cpu = new Map<string, { last: Map<number, number>; total: number; timeline: number[] }>();
  /** Per group, the last `write_bytes` seen of each pid, and the bytes written so far. */
  private readonly written = new Map<string, { last: Map<number, number>; total: number }>();
  private startedAt = 0;
  /** Whether the first sample was taken (processes seen in it count from what they had written then). */
  private sampled = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly groups: Record<string, () => number[]>,
    private readonly intervalMs = 25,
  ) {}

  start(): this {
    this.startedAt = performance.now();
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    return this;
  }

  stop(): Record<string, RssFigures> {
    clearInterval(this.timer);
    this.sample();
    return Object.fromEntries(
      Object.keys(this.groups).map((name) => {
        const { first, peak } = this.figures.get(name) ?? { first: Number.NaN, peak: Number.NaN };
        const cpu = this.cpu.get(name);
        const timeline = Array.from(cpu?.timeline ?? [], (ms) => ms ?? 0);
        const writtenBytes = this.written.get(name)?.total ?? 0;
        return [
          name,
          { first, peak, growth: peak - first, cpuMs: cpu?.total ?? 0, cpuTimeline: timeline, writtenBytes },
        ];
      }),
    );
  }

  private sample(): void {
    const bucket = Math.floor((performance.now() - this.startedAt) / TIMELINE_BUCKET_MS);
    for (const [name, pids] of Object.entries(this.groups)) {
      const ids = pids();
      let cpu = this.cpu.get(name);
      if (!cpu) this.cpu.set(name, (cpu = { last: new Map(), total: 0, timeline: [] }));
      let written = this.written.get(name);
      if (!written) this.written.set(name, (written = { last: new Map(), total: 0 }));
      for (const pid of ids) {
        const bytes = writeBytes(pid);
        const wroteBefore = written.last.get(pid);
        written.last.set(pid, bytes);
        // A process that appeared after the first sample (a module host started meanwhile) counts from 0.
        const from = wroteBefore ?? (this.sampled ? 0 : bytes);
        if (bytes > from) written.total += bytes - from;
      }
      for (const pid of ids) {
        // Its own threads' CPU in the machine's clock ticks (CLK_TCK); NaN once it is gone.
        const used = processCpuMs(pid);
        if (Number.isNaN(used)) continue;
        const before = cpu.last.get(pid);
        cpu.last.set(pid, used);
        if (before === undefined || used <= before) continue;
        cpu.total += used - before;
        cpu.timeline[bucket] = (cpu.timeline[bucket] ?? 0) + used - before;
      }
      const total = ids.reduce((sum, pid) => sum + rssBytes(pid), 0);
      if (total === 0) continue;
      const figures = this.figures.get(name);
      if (!figures) this.figures.set(name, { first: total, peak: total });
      else figures.peak = Math.max(figures.peak, total);
    }
    this.sampled = true;
  }
}

export const MB = 1024 * 1024;

/** Dirty + Writeback of /proc/meminfo, bytes: pages the kernel has still to write back (NaN where it cannot be read). */
export function dirtyBytes(): number {
  try {
    const info = readFileSync('/proc/meminfo', 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(info)?.[1] ?? 0);
    return (kb('Dirty') + kb('Writeback')) * 1024;
  } catch {
    return Number.NaN;
  }
}
