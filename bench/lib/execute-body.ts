/** The `execute` request the benchmarks send: what the orchestrator sends for a no-op module of the dispatch bench. */
import { formatTimeSpan } from '@mpd/contract';

/**
 * An execute body as the orchestrator sends for a no-op module of the dispatch bench (module
 * 42 of a chain: one dependency result), as an object; `index` varies its ids.
 */
export function executeBodyOf(index = 42): Record<string, unknown> {
  const name = `m${String(index).padStart(5, '0')}`;
  return {
    executionId: `run-0123456789abcdef.${name}.1`,
    moduleTypeName: name,
    serializedModule: JSON.stringify({ sleepMs: 0 }),
    dependencyResults: { m00041: '{"t":"123456789012345"}' },
    environmentVariables: {},
    timeout: formatTimeSpan(30 * 60_000),
    timestamp: new Date().toISOString(),
  };
}

/** {@link executeBodyOf} as JSON text. */
export function executeBody(index = 42): string {
  return JSON.stringify(executeBodyOf(index));
}
