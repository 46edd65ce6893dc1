import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorkerClient } from '@mpd/client';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { instantWorkerClient } from '@mpd/test-kit';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { InMemoryNodeRegistry } from '../registry/in-memory-node-registry.js';
import { ExecutionLogs } from './execution-logs.js';
import { runPipeline } from './pipeline-runner.js';
import type { RunEvent } from './run-result.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('runPipeline: module output', () => {
  it('reports the lines of each attempt as output events, keeps them in its log file and references it (an attempt without output has none); waits for the last batch after the answer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mpd-run-output-'));
    dirs.push(dir);
    const build = defineModule({ name: 'build', run: () => null });
    const quiet = defineModule({ name: 'quiet', run: () => null });
    const pipeline = definePipeline({ name: 'output', modules: [build, quiet] });
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
    registry.register({
      id: 'w1',
      endpoint: 'http://w1:9000',
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
      pipeline: { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: ['build', 'quiet'] },
    });
    const executionLogs = new ExecutionLogs();
    const client = instantWorkerClient({
      // As a worker does: the output is shipped after the answer, its last batch `final`.
      onExecute: ({ executionId }) => {
        if (executionId.includes('.quiet.')) {
          // A module that wrote nothing: only the final batch, with no line.
          setTimeout(() => void executionLogs.append(executionId, 'w1', { fromSeq: 0, lines: [], final: true }), 100);
          return;
        }
        setTimeout(() => {
          const time = Date.UTC(2026, 0, 1);
          void executionLogs
            .append(executionId, 'w1', {
              fromSeq: 0,
              lines: [
                { time, stream: 'log', level: 'info', text: 'compiling' },
                { time, stream: 'stderr', text: 'warning: unused' },
              ],
            })
            .then(() => executionLogs.append(executionId, 'w1', { fromSeq: 2, lines: [], final: true }));
        }, 100);
      },
    }) as unknown as WorkerClient;
    const events: RunEvent[] = [];
    const result = await runPipeline({
      pipeline,
      registry,
      logger: pino({ level: 'silent' }),
      createClient: () => client,
      executionLogs,
      logsDir: dir,
      onEvent: (event) => events.push(event),
    });
    expect(result.status).toBe('Successful');
    const file = join(dir, 'build', '1.log');
    expect(result.modules[0]!.attempts[0]!.log).toBe(file);
    // No line, no file, and no reference to one.
    expect(result.modules[1]!.attempts[0]!.log).toBeUndefined();
    await expect(readFile(join(dir, 'quiet', '1.log'))).rejects.toThrow(/ENOENT/);
    const output = events.filter((event) => event.type === 'output');
    expect(output.flatMap((event) => event.lines.map((line) => line.text))).toEqual(['compiling', 'warning: unused']);
    expect(output.at(-1)).toMatchObject({ module: 'build', attempt: 1, workerId: 'w1', closed: true });
    expect(await readFile(file, 'utf8')).toBe(
      '2026-01-01T00:00:00.000Z log info compiling\n2026-01-01T00:00:00.000Z stderr - warning: unused\n',
    );
    // The run forgot its attempts: a batch that comes now is refused.
    expect(
      await executionLogs.append(result.modules[0]!.attempts[0]!.executionId, 'w1', { fromSeq: 2, lines: [] }),
    ).toEqual({
      kind: 'not-found',
    });
  });
});
