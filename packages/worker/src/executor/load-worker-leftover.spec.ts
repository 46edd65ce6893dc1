/**
 * The leftover check reads every thread's children list: a child of a worker thread the pipeline
 * file started at load, asleep in futex (`Atomics.wait`) when the host settled, is a leftover like
 * any other: the host is not reused and the child is stopped before the answer. (Round K's
 * review: K2's rule that read no thread asleep in futex at settle missed it, and the host was
 * reused with the child running.)
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MAX_RESULT_BYTES } from '@mpd/contract';
import { loadPipelineFile, type Pipeline } from '@mpd/pipeline';
import { fingerprintAsTsxLoads } from '@mpd/test-kit';
import pino from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ExecutionOutcome } from './execution.js';
import { ModuleExecutor } from './module-executor.js';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/load-worker.pipeline.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mpd-load-worker-'));
let pipeline: Pipeline;
const executors: ModuleExecutor[] = [];
const children: number[] = [];
let logLines: string[] = [];

beforeAll(async () => {
  pipeline = { ...(await loadPipelineFile(FIXTURE)), fingerprint: fingerprintAsTsxLoads(FIXTURE) };
});
afterEach(async () => {
  for (const pid of children.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await Promise.all(executors.splice(0).map((executor) => executor.close('test over')));
  logLines = [];
});

function executor(): ModuleExecutor {
  const created = new ModuleExecutor({
    workerId: 'worker-1',
    pipeline,
    slots: 1,
    defaultTimeoutMs: 60_000,
    workingDirectory: dir,
    completedRetentionMs: 60_000,
    maxResultBytes: DEFAULT_MAX_RESULT_BYTES,
    isolation: 'process',
    killGraceMs: 1_000,
    moduleHeapLimitMb: 64,
    logger: pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) }),
  });
  executors.push(created);
  return created;
}

let nextId = 1;
function run(on: ModuleExecutor, moduleTypeName: string): Promise<ExecutionOutcome> {
  const decision = on.execute({
    executionId: `exec-${nextId++}`,
    moduleTypeName,
    params: undefined,
    dependencyResults: {},
    environmentVariables: {},
    secretEnvironmentVariables: [],
    fingerprint: moduleTypeName,
  });
  if (decision.kind !== 'started') throw new Error(`not started: ${JSON.stringify(decision)}`);
  return decision.outcome;
}
function resultOf(outcome: ExecutionOutcome): Record<string, unknown> {
  if (outcome.status !== 200) throw new Error(`module failed: ${outcome.body.errorMessage}`);
  return JSON.parse(outcome.body.serializedResult) as Record<string, unknown>;
}
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!);
  } catch {
    return false;
  }
}

describe.runIf(process.platform === 'linux')('a worker thread the pipeline file started at load', () => {
  it('asleep in futex at settle, then starting a process for a module: the process is a leftover, stopped with its host before the answer; the next module runs on a fresh host', async () => {
    const on = executor();
    const { pid: host, child } = resultOf(await run(on, 'wake-load-worker')) as { pid: number; child: number };
    children.push(child);
    expect(child).toBeGreaterThan(0);
    expect(running(child)).toBe(false);
    expect(logLines.join('')).toMatch(/left 1 process\(es\) running/);
    await on.idle();
    expect(resultOf(await run(on, 'echo')).pid).not.toBe(host);
  }, 30_000);
});
