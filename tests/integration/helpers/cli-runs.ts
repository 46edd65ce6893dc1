/**
 * What the specs that run the orchestrator and worker CLIs as real processes share
 * (`processes/cli.spec.ts`, `processes/faults.spec.ts`, `processes/registration.spec.ts`): the
 * fixtures' paths, a CLI started and listening, an orchestrator running a pipeline, and the run's
 * `--report` file.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunResult } from '@mpd/orchestrator';
import { cliOf, orchestratorArgs, type RunningProcess, spawnProcess } from '@mpd/test-kit';

/** The absolute path of `tests/integration/fixtures/<name>`. */
export const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

/**
 * Starts a package's CLI under tsx (in a process group of its own: `killLeftovers` stops it)
 * with `MPD_LOG_LEVEL=info` and `env`; resolves once it prints the URL it listens on (rejects,
 * with its output, if it exits first).
 * @param options.cleanEnv with no `MPD_*` variable inherited from the test's environment @default false
 */
export async function startListening(
  pkg: 'orchestrator' | 'worker',
  args: string[],
  { env = {}, cleanEnv = false }: { env?: Record<string, string>; cleanEnv?: boolean } = {},
): Promise<RunningProcess & { url: string }> {
  const proc = spawnProcess({ script: cliOf(pkg), args, cleanEnv, env: { MPD_LOG_LEVEL: 'info', ...env } });
  return { ...proc, url: await proc.listeningUrl() };
}

/**
 * A run's report: `file`, `report.json` in a new temporary directory (`<prefix>…`), to pass as
 * the orchestrator's `--report`; `read()` parses it once the orchestrator wrote it (throws
 * while it is missing).
 */
export function runReport(prefix = 'mpd-e2e-'): { file: string; read(): RunResult } {
  const file = join(mkdtempSync(join(tmpdir(), prefix)), 'report.json');
  return { file, read: () => JSON.parse(readFileSync(file, 'utf8')) as RunResult };
}

/** What {@link startOrchestratorRun} runs. */
export interface OrchestratorRun {
  /** The pipeline file (`--pipeline`). */
  pipeline: string;
  /** How many workers to wait for before the run starts (`--min-workers`). @default 1 */
  minWorkers?: number;
  /** Where the run's report goes (`--report`; see {@link runReport}). */
  report: string;
  /** Variables set on top of `MPD_LOG_LEVEL=info` (a join token: `MPD_JOIN_TOKEN`). @default none */
  env?: Record<string, string>;
}

/**
 * The orchestrator CLI running one pipeline and exiting with its outcome (0 when it succeeded),
 * on a free port of 127.0.0.1 with test-kit's short heartbeats (`orchestratorArgs`: 0.5 s
 * interval, 3 s timeout), then `flags` (a flag given again wins: `--heartbeat-timeout 60`);
 * started as {@link startListening} starts a CLI (resolves once it listens).
 */
export function startOrchestratorRun(
  { pipeline, minWorkers = 1, report, env = {} }: OrchestratorRun,
  ...flags: string[]
): Promise<RunningProcess & { url: string }> {
  const args = orchestratorArgs(0, '--pipeline', pipeline, '--min-workers', String(minWorkers), '--report', report);
  return startListening('orchestrator', [...args, ...flags], { env });
}
