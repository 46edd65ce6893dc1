/**
 * The leftover check reads every thread's children list: a child of a worker thread the pipeline
 * file started at load, asleep in futex (`Atomics.wait`) when the host settled, is a leftover like
 * any other: the host is not reused and the child is stopped before the answer. (Round K's
 * review: K2's rule that read no thread asleep in futex at settle missed it, and the host was
 * reused with the child running.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPipelineFile, type Pipeline } from '@mpd/pipeline';
import { asTsxLoads } from '@mpd/test-kit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hostedExecutor, resultOf, running, startedOutcome } from '../../test/hosted-executors.js';
import type { ExecutionOutcome } from './execution.js';
import type { ModuleExecutor } from './module-executor.js';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/load-worker.pipeline.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mpd-load-worker-'));
let pipeline: Pipeline;
const executors: ModuleExecutor[] = [];
const children: number[] = [];
let logLines: string[] = [];

beforeAll(async () => {
  pipeline = { ...(await loadPipelineFile(FIXTURE)), ...asTsxLoads(FIXTURE) };
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
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function executor(): ModuleExecutor {
  const created = hostedExecutor(pipeline, dir, (line) => logLines.push(line));
  executors.push(created);
  return created;
}

let nextId = 1;
function run(on: ModuleExecutor, moduleTypeName: string): Promise<ExecutionOutcome> {
  return startedOutcome(
    on.execute({
      executionId: `exec-${nextId++}`,
      moduleTypeName,
      params: undefined,
      dependencyResults: {},
      environmentVariables: {},
      secretEnvironmentVariables: [],
      fingerprint: moduleTypeName,
    }),
  );
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
