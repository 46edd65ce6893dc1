/** The benchmarks' result rows, the table on stdout and `bench/results.json`. */
import { writeFileSync } from 'node:fs';
import { arch, cpus, loadavg, platform, release, totalmem } from 'node:os';
import { median } from './stats.js';

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
}

export interface RowResult extends Row {
  ratio?: number | undefined;
  met?: boolean | undefined;
}

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
