/** Resident set sizes read from /proc while a benchmark runs (Linux; elsewhere every figure is NaN). */
import { readFileSync } from 'node:fs';

/** The RSS of process `pid` now (VmRSS), bytes; 0 when it is gone or /proc cannot be read. */
export function rssBytes(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The ids of the live child processes of `pid` (a worker's module hosts). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
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
}

/**
 * Samples the summed RSS of groups of processes every `intervalMs` (each group's pids are
 * asked for at every sample, so that module hosts started meanwhile are counted).
 */
export class RssSampler {
  private readonly figures = new Map<string, { first: number; peak: number }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly groups: Record<string, () => number[]>,
    private readonly intervalMs = 25,
  ) {}

  start(): this {
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
        return [name, { first, peak, growth: peak - first }];
      }),
    );
  }

  private sample(): void {
    for (const [name, pids] of Object.entries(this.groups)) {
      const total = pids().reduce((sum, pid) => sum + rssBytes(pid), 0);
      if (total === 0) continue;
      const figures = this.figures.get(name);
      if (!figures) this.figures.set(name, { first: total, peak: total });
      else figures.peak = Math.max(figures.peak, total);
    }
  }
}

export const MB = 1024 * 1024;
