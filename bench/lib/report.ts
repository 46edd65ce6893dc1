/** The benchmarks' result rows, the table on stdout and `bench/results.json`. */
import { writeFileSync } from 'node:fs';
import { arch, cpus, loadavg, platform, release, totalmem } from 'node:os';
import { median, percentile } from './stats.js';

/** A target on a row's value or on its ratio to the baseline. */
export interface Target {
  on: 'value' | 'ratio';
  /** `max`: the figure must be at most `limit`; `min`: at least. */
  kind: 'max' | 'min';
  limit: number;
}

export interface Row {
  benchmark: string;
  metric: string;
  unit: string;
  /** The median over the runs. */
  value: number;
  /** The same figure for the baseline measured in the same run of the bench. */
  baseline?: number | undefined;
  /** What the baseline is, e.g. `bare express`. */
  baselineLabel?: string | undefined;
  target?: Target | undefined;
  /** Every run's figure (the value is their median). */
  runs?: number[] | undefined;
  baselineRuns?: number[] | undefined;
  /** Print the spread of `runs` (and `baselineRuns`) under the table ({@link formatSpread}): the judged rows and their parts. */
  spread?: boolean | undefined;
  /** For the spread's line: count the runs within this bound (a row whose target is on the ratio of the medians, or that has none). */
  spreadLimit?: { kind: 'max' | 'min'; limit: number } | undefined;
}

export interface RowResult extends Row {
  ratio?: number | undefined;
  met?: boolean | undefined;
}

/** µs with one decimal for the benchmarks' own tables on stdout; '-' for NaN or infinity. */
export const fixedMicros = (micros: number): string => (Number.isFinite(micros) ? micros.toFixed(1) : '-');

/** A row maker for `benchmark`'s figures in µs: the median of `runs`, every run kept. */
export const microsRow =
  (benchmark: string) =>
  (metric: string, runs: number[], rest: Partial<Row> = {}): Row => ({
    benchmark,
    metric,
    unit: 'us',
    value: median(runs),
    runs,
    ...rest,
  });

export function evaluate(row: Row): RowResult {
  const ratio =
    row.baseline !== undefined && Number.isFinite(row.baseline) && row.baseline !== 0
      ? row.value / row.baseline
      : undefined;
  let met: boolean | undefined;
  if (row.target) {
    const figure = row.target.on === 'ratio' ? ratio : row.value;
    met =
      figure === undefined || !Number.isFinite(figure)
        ? false
        : row.target.kind === 'max'
          ? figure <= row.target.limit
          : figure >= row.target.limit;
  }
  return { ...row, ratio, met };
}

export function formatNumber(value: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return '-';
  const magnitude = Math.abs(value);
  if (magnitude >= 1000) return Math.round(value).toLocaleString('en-US');
  if (magnitude >= 100) return value.toFixed(0);
  if (magnitude >= 10) return value.toFixed(1);
  if (magnitude >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

function formatTarget(target: Target | undefined, unit: string): string {
  if (!target) return '';
  const sign = target.kind === 'max' ? '<=' : '>=';
  return target.on === 'ratio' ? `ratio ${sign} ${target.limit}` : `${sign} ${formatNumber(target.limit)} ${unit}`;
}

/** The results as a plain-text table: benchmark, metric, value, baseline, ratio, target, met?. */
export function formatTable(rows: readonly RowResult[]): string {
  const header = ['benchmark', 'metric', 'value', 'baseline', 'ratio', 'target', 'met?'];
  const lines = rows.map((row) => [
    row.benchmark,
    row.metric,
    `${formatNumber(row.value)} ${row.unit}`,
    row.baseline === undefined ? '' : `${formatNumber(row.baseline)} ${row.unit} (${row.baselineLabel ?? 'baseline'})`,
    row.ratio === undefined ? '' : row.ratio.toFixed(2),
    formatTarget(row.target, row.unit),
    row.met === undefined ? '' : row.met ? 'yes' : 'NO',
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column]!.length)));
  const render = (cells: string[]): string =>
    cells
      .map((cell, column) =>
        column === 2 || column === 4 ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!),
      )
      .join('  ')
      .trimEnd();
  return [render(header), render(widths.map((width) => '-'.repeat(width))), ...lines.map(render)].join('\n');
}

/** `min / p25 / median / p75 / max (n)` of `values`, by {@link formatNumber}. */
function spreadOf(values: readonly number[]): string {
  const figures = [0, 25, 50, 75, 100].map((p) => (p === 50 ? median(values) : percentile(values, p)));
  return `${figures.map(formatNumber).join(' / ')} (${values.length})`;
}

/**
 * One line per row marked `spread`: min / p25 / median / p75 / max of its runs (and of its
 * baseline's), and, for a target on the value, how many runs met it. A median alone hides how
 * far one bench run's figure can move (issue 13's judged figures moved by 0.1-0.4 between runs).
 */
export function formatSpread(rows: readonly RowResult[]): string {
  const lines: string[] = [];
  for (const row of rows) {
    if (!row.spread || !row.runs || row.runs.length === 0) continue;
    let line = `${row.benchmark}: ${row.metric}: runs ${spreadOf(row.runs)} ${row.unit}`;
    if (row.baselineRuns?.length)
      line += `; ${row.baselineLabel ?? 'baseline'} ${spreadOf(row.baselineRuns)} ${row.unit}`;
    const bound = row.target?.on === 'value' ? row.target : row.spreadLimit;
    if (bound) {
      const { kind, limit } = bound;
      const met = row.runs.filter((value) => (kind === 'max' ? value <= limit : value >= limit)).length;
      line += `; ${met} of ${row.runs.length} runs ${kind === 'max' ? '<=' : '>='} ${limit}`;
    }
    lines.push(line);
  }
  return lines.length
    ? `spread (min / p25 / median / p75 / max (runs)):\n${lines.map((line) => `  ${line}`).join('\n')}`
    : '';
}

export interface Machine {
  cpuModel: string;
  cpuCount: number;
  totalMemoryMb: number;
  os: string;
  node: string;
  date: string;
  /** 1, 5 and 15 minute load averages when the bench started: other work on the machine skews the figures. */
  loadAverage: number[];
}

export function machine(): Machine {
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cpuCount: list.length,
    totalMemoryMb: Math.round(totalmem() / 1024 / 1024),
    os: `${platform()} ${release()} ${arch()}`,
    node: process.version,
    date: new Date().toISOString(),
    loadAverage: loadavg(),
  };
}

export function writeResults(
  file: string,
  content: {
    machine: Machine & { loadAverageAtEnd: number[] };
    smoke: boolean;
    notes: string[];
    rows: RowResult[];
    details: Record<string, unknown>;
  },
): void {
  writeFileSync(file, `${JSON.stringify(content, null, 2)}\n`);
}

/**
 * A row maker for one benchmark whose runs and baseline runs are records of the same type:
 * `row(metric, unit, pick, target)` gives the median of `pick` over each, every run's figure kept.
 */
export function rowsOf<T>(
  benchmark: string,
  measured: readonly T[],
  baseline: readonly T[],
  baselineLabel: string,
): (metric: string, unit: string, pick: (run: T) => number, target?: Target) => Row {
  return (metric, unit, pick, target) => ({
    benchmark,
    metric,
    unit,
    value: median(measured.map(pick)),
    runs: measured.map(pick),
    baseline: median(baseline.map(pick)),
    baselineRuns: baseline.map(pick),
    baselineLabel,
    target,
  });
}
