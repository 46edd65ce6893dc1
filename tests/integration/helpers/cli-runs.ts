/**
 * What the specs that run the orchestrator and worker CLIs as real processes share
 * (`processes/cli.spec.ts`, `processes/registration.spec.ts`): the fixtures' paths, a CLI
 * started and listening, and the run's `--report` file.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunResult } from '@mpd/orchestrator';
import { cliOf, type RunningProcess, spawnProcess } from '@mpd/test-kit';

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
