import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { WorkerClient } from '@mpd/client';
import { pino } from 'pino';
import type { WorkerNode, WorkerNodeRegistration } from '@mpd/contract';
import { defineModule, definePipeline, type Pipeline } from '@mpd/pipeline';
import { describe, expect, it } from 'vitest';
import { InMemoryNodeRegistry } from '../registry/in-memory-node-registry.js';
import { ExecutionLogs } from '../runner/execution-logs.js';
import { runPipelineFromCli, waitForWorkers } from './run-from-cli.js';

/** The registry, counting how often the whole of it is read (`snapshot`). */
class CountingRegistry extends InMemoryNodeRegistry {
  snapshots = 0;
  override snapshot(): readonly WorkerNode[] {
    this.snapshots++;
    return super.snapshot();
  }
}

const pipeline = definePipeline({ name: 'ci', modules: [defineModule({ name: 'build', run: () => 1 })] });

const worker = (id: string, of: Pipeline | undefined = pipeline): WorkerNodeRegistration => ({
  id,
  endpoint: 'http://127.0.0.1:9000',
  capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
  ...(of ? { pipeline: { name: of.name, fingerprint: of.fingerprint, modules: [...of.modules.keys()] } } : {}),
});

function waiting(registry: InMemoryNodeRegistry, minWorkers: number) {
  const lines: string[] = [];
  const controller = new AbortController();
  let outcome: string | undefined;
  const done = waitForWorkers(registry, pipeline, minWorkers, {
    signal: controller.signal,
    workerWaitMs: 600_000,
    print: (line) => lines.push(line),
  }).then((result) => (outcome = result));
  return { lines, done, outcome: () => outcome, cancel: () => controller.abort() };
}

describe('waitForWorkers (--min-workers)', () => {
  // Issue 11: every registry event, heartbeats included, read the whole registry while the run
  // waited: 20,000 registrations took over 100 s instead of 23. Each event now looks at its worker only.
  it('does work proportional to the events: the whole registry is read at the start and once enough came, never per event', async () => {
    const registry = new CountingRegistry({ heartbeatTimeoutMs: 600_000 });
    const count = 5_000;
    const started = performance.now();
    const wait = waiting(registry, count);
    const other = definePipeline({ name: 'other', modules: [defineModule({ name: 'x', run: () => 1 })] });
    for (let index = 0; index < count - 1; index++) {
      registry.register(worker(`w${index}`));
      registry.heartbeat(`w${index}`, 0);
      registry.register(worker(`o${index}`, other));
    }
    expect(registry.snapshots).toBe(1);
    expect(wait.outcome()).toBeUndefined();
    registry.register(worker('last'));
    await wait.done;
    expect(wait.outcome()).toBe('ready');
    expect(registry.snapshots).toBe(2);
    // Generous: about 1 s here on a loaded machine; the per-event reads took minutes at this size.
    expect(performance.now() - started).toBeLessThan(20_000);
    // Each worker that does not fit is named once.
    expect(wait.lines.filter((line) => line.includes('is not used')).length).toBe(count - 1);
  });

  it('reads the whole registry once enough came by the events: a worker drained meanwhile (no event) is not counted', async () => {
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 600_000 });
    const wait = waiting(registry, 2);
    registry.register(worker('a'));
    registry.drain('a');
    registry.register(worker('b'));
    await Promise.resolve();
    expect(wait.outcome()).toBeUndefined();
    expect(wait.lines).toContain('[mpd] worker a is not used: it is draining');
    registry.register(worker('c'));
    await wait.done;
    expect(wait.outcome()).toBe('ready');
    expect(wait.lines.at(-1)).toBe('[mpd] 2 worker(s) ready: b, c');
  });

  it('forgets a worker that unregisters or is removed', async () => {
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 600_000 });
    const wait = waiting(registry, 2);
    registry.register(worker('a'));
    registry.unregister('a');
    registry.register(worker('b'));
    await Promise.resolve();
    expect(wait.outcome()).toBeUndefined();
    wait.cancel();
    await wait.done;
    expect(wait.outcome()).toBe('cancelled');
  });
});

describe('runPipelineFromCli: module output', () => {
  it("prints the modules' lines live, and the last lines of a failed module again after the summary", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mpd-cli-output-'));
    try {
      const failing = definePipeline({ name: 'ci', modules: [defineModule({ name: 'build', run: () => 1 })] });
      const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 600_000 });
      registry.register(worker('w1', failing));
      const executionLogs = new ExecutionLogs();
      // A worker whose module writes 25 lines and fails; its last batch comes after the answer.
      const client = {
        execution: {
          execute: async ({ body }: { body: { executionId: string } }) => {
            const lines = Array.from({ length: 25 }, (_, index) => ({
              time: 0,
              stream: 'stderr' as const,
              text: `error ${index}`,
            }));
            await executionLogs.append(body.executionId, 'w1', { fromSeq: 0, lines });
            setTimeout(
              () => void executionLogs.append(body.executionId, 'w1', { fromSeq: 25, lines: [], final: true }),
              50,
            );
            const now = new Date().toISOString();
            const times = {
              executionId: body.executionId,
              duration: '00:00:00',
              startTime: now,
              endTime: now,
              workerId: 'w1',
            };
            return {
              status: 500,
              body: { ...times, success: false, errorMessage: 'tsc failed', exceptionType: 'Error', stackTrace: null },
            };
          },
          cancel: async () => ({ status: 200, body: { success: true } }),
        },
        close: async () => undefined,
      } as unknown as WorkerClient;
      let printed = '';
      const output = new Writable({
        write(chunk, _encoding, done) {
          printed += String(chunk);
          done();
        },
      });
      const { success } = await runPipelineFromCli({
        pipeline: failing,
        registry,
        logger: pino({ level: 'silent' }),
        signal: new AbortController().signal,
        minWorkers: 1,
        createClient: () => client,
        executionLogs,
        logsDir: dir,
        output,
        outputMode: 'prefixed',
        env: {},
      });
      expect(success).toBe(false);
      expect(printed).toContain('[build] error 0\n');
      const after = printed.slice(printed.indexOf('Module '));
      expect(after).toContain(
        `[mpd] last 20 line(s) of build (attempt 1, whole log: ${join(dir, 'build', '1.log')}):\n`,
      );
      expect(after).toContain('[build] error 5\n');
      expect(after).toContain('[build] error 24\n');
      expect(after).not.toContain('[build] error 4\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
