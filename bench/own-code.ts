/**
 * Own per-module code, micro-benchmarks (issue 14, round Z): each cut beside the code path it
 * replaced (or the plain way), both timed in this process in the same run, alternating order,
 * as ns per call (median over the runs):
 * - `parseTimeSpan` (contract): the char-code path against the regex path (`parseTimeSpanByRegex`)
 *   on the forms the runner parses per module (a worker's `duration`, a module's timeout);
 * - `isoTime` (contract): against `new Date(ms).toISOString()`, ms rising as a run's clock does
 *   (the runner's attempt times and log lines, the worker's `startTime`/`endTime`);
 * - `distinctKeys` (orchestrator `ConcurrencyRules`, per start and end of a module): a module's
 *   notInParallel keys (none, as most modules) against `new Set(keys)`;
 * - `hasReference` (worker `withResultReferences`, per module, with `asResultRef` refusing an
 *   object without an own `$mpdRef` before it lists its keys): a module's dependency results
 *   (three small values, one an object) against `Object.values(…).some(…)` over the
 *   `asResultRef` before round Z (`Object.keys` first), copied here.
 */
import { isoTime } from '@mpd/contract';
import { parseTimeSpan, parseTimeSpanByRegex } from '../packages/contract/src/time-span.js';
import { distinctKeys } from '../packages/orchestrator/src/runner/concurrency.js';
import { hasReference } from '../packages/worker/src/executor/result-references.js';
import type { Row } from './lib/report.js';
import { median } from './lib/stats.js';

export interface OwnCodeConfig {
  runs: number;
  /** Calls per timed batch. */
  calls: number;
}

export const OWN_CODE_FULL: OwnCodeConfig = { runs: 7, calls: 1_000_000 };
export const OWN_CODE_SMOKE: OwnCodeConfig = { runs: 1, calls: 1_000 };

/** Keeps results alive so that V8 cannot drop the work. */
let sink = 0;

interface Pair {
  metric: string;
  baselineLabel: string;
  /** The cut: one call per `i`. */
  now: (i: number) => number;
  /** The replaced path (or the plain way), the same work. */
  before: (i: number) => number;
}

const TIMES = ['00:00:00.0123456', '00:30:00', '00:00:01.5000000', '00:02:30'];
const KEYS: readonly string[] = [];
const DEPENDENCIES = { a: 1, b: 'text', c: { nested: true } };
const START = Date.UTC(2026, 11, 3, 7, 0, 0);

const PAIRS: Pair[] = [
  {
    metric: 'parseTimeSpan, ns a call',
    baselineLabel: 'the regex path (parseTimeSpanByRegex, the code before round Z)',
    now: (i) => parseTimeSpan(TIMES[i & 3]!)!,
    before: (i) => parseTimeSpanByRegex(TIMES[i & 3]!)!,
  },
  {
    metric: 'isoTime, ns a call (ms rising by 1 every 8 calls)',
    baselineLabel: 'new Date(ms).toISOString()',
    now: (i) => isoTime(START + (i >> 3)).length,
    before: (i) => new Date(START + (i >> 3)).toISOString().length,
  },
  {
    metric: "ConcurrencyRules' key loop (no key), ns a start or end",
    baselineLabel: 'for … of new Set(keys)',
    now: () => {
      let n = 0;
      for (const key of distinctKeys(KEYS)) n += key.length;
      return n + 1;
    },
    before: () => {
      let n = 0;
      for (const key of new Set(KEYS)) n += key.length;
      return n + 1;
    },
  },
  {
    metric: "withResultReferences' reference check (3 values), ns a module",
    baselineLabel: 'Object.values(…).some(asResultRef) before round Z',
    now: () => (hasReference(DEPENDENCIES) ? 1 : 2),
    before: () => (Object.values(DEPENDENCIES).some((value) => asResultRefBeforeZ(value) !== undefined) ? 1 : 2),
  },
];

/** The worker's `asResultRef` before round Z: every object's keys listed first. */
function asResultRefBeforeZ(value: unknown): { sha256: string; size: number } | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const keys = Object.keys(value);
  if (keys.length !== 1 || keys[0] !== '$mpdRef') return undefined;
  const ref = (value as Record<string, unknown>).$mpdRef;
  if (typeof ref !== 'object' || ref === null || Array.isArray(ref)) return undefined;
  const { sha256, size } = ref as Record<string, unknown>;
  if (Object.keys(ref).length !== 2) return undefined;
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) return undefined;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return undefined;
  return { sha256, size };
}

function timeNs(calls: number, call: (i: number) => number): number {
  const started = process.hrtime.bigint();
  let acc = 0;
  for (let i = 0; i < calls; i++) acc += call(i);
  const ns = Number(process.hrtime.bigint() - started);
  sink += acc;
  return ns / calls;
}

export async function ownCodeBench(config: OwnCodeConfig): Promise<{ rows: Row[]; details: unknown }> {
  const rows: Row[] = [];
  const details: Record<string, { now: number[]; before: number[] }> = {};
  for (const pair of PAIRS) {
    const now: number[] = [];
    const before: number[] = [];
    // Warm-up: both paths optimised before the first timed batch.
    timeNs(Math.min(config.calls, 100_000), pair.now);
    timeNs(Math.min(config.calls, 100_000), pair.before);
    for (let run = 0; run < config.runs; run++) {
      if (run % 2 === 0) {
        now.push(timeNs(config.calls, pair.now));
        before.push(timeNs(config.calls, pair.before));
      } else {
        before.push(timeNs(config.calls, pair.before));
        now.push(timeNs(config.calls, pair.now));
      }
      // Let the event loop turn (the bench's other work, timers) between batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
    details[pair.metric] = { now, before };
    rows.push({
      benchmark: 'own code (issue 14)',
      metric: pair.metric,
      unit: 'ns',
      value: median(now),
      baseline: median(before),
      baselineLabel: pair.baselineLabel,
      runs: now,
      baselineRuns: before,
    });
  }
  return { rows, details: { ...details, sink } };
}
