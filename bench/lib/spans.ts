/** Figures from when runs started and ended on workers (µs on the shared monotonic clock), for mpd and its peer alike. */

/** One module or job run on a worker: where, and when its `run` (processor) started and ended, µs. */
export interface Span {
  worker: string;
  start: number;
  end: number;
}

/**
 * For each span (same order), when the slot it took had been freed by another run on its
 * worker, µs; undefined for the first `slots` runs of a worker, which took fresh slots. Runs
 * take the earliest freed slot; a slot freed at the instant a run starts is free for it.
 */
export function slotFreedAt(spans: readonly Span[], slots: number): (number | undefined)[] {
  const freedAt: (number | undefined)[] = new Array(spans.length).fill(undefined);
  const byWorker = new Map<string, number[]>();
  spans.forEach((span, index) => byWorker.set(span.worker, [...(byWorker.get(span.worker) ?? []), index]));
  for (const own of byWorker.values()) {
    const events = own
      .flatMap((index) => [
        { at: spans[index]!.end, kind: 0 as const, index },
        { at: spans[index]!.start, kind: 1 as const, index },
      ])
      .sort((a, b) => a.at - b.at || a.kind - b.kind);
    let fresh = slots;
    const freed: number[] = [];
    for (const event of events) {
      if (event.kind === 0) freed.push(event.at);
      else if (fresh > 0) fresh--;
      else freedAt[event.index] = freed.shift();
    }
  }
  return freedAt;
}

/**
 * Slot turnaround, ms: for each run that took a slot another run had freed on the same worker,
 * the time from that run's end to this one's start (issue 14's "a run ends → the next starts in
 * that slot"); see {@link slotFreedAt}.
 */
export function slotTurnarounds(spans: readonly Span[], slots: number): number[] {
  const freedAt = slotFreedAt(spans, slots);
  return spans.flatMap((span, index) => (freedAt[index] === undefined ? [] : [(span.start - freedAt[index]!) / 1_000]));
}

/** Hops of a chain, ms: run i + 1's start minus run i's end, for spans in chain order. */
export function chainHops(spans: readonly Span[]): number[] {
  return spans.slice(1).map((span, index) => (span.start - spans[index]!.end) / 1_000);
}
