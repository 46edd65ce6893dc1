import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorkerClient } from '@mpd/client';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { instantWorkerClient, ManualClock } from '@mpd/test-kit';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { InMemoryNodeRegistry } from '../registry/in-memory-node-registry.js';
import { ExecutionLogs } from './execution-logs.js';
import { runPipeline } from './pipeline-runner.js';
import type { RunEvent } from './run-result.js';
import { formatEvent, formatSummary } from './summary.js';

const dirs: string[] = [];
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
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
    // build's last event closes its output (quiet's own closing event may come before or after it: both ship on a timer).
    expect(output.filter((event) => event.module === 'build').at(-1)).toMatchObject({
      module: 'build',
      attempt: 1,
      workerId: 'w1',
      closed: true,
    });
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

describe("runPipeline: the wait for output at the run's end", () => {
  const time = Date.UTC(2026, 0, 1);
  const lines = (from: number, count: number) =>
    Array.from({ length: count }, (_, index) => ({ time, stream: 'stdout' as const, text: `line ${from + index}` }));

  /**
   * A run of `modules` (each alone on a worker of its own name) on a manual clock, whose workers
   * answer at once and ship nothing by themselves: the test sends their batches.
   */
  function setup(names: string[], options: { maxOutputWaitMs?: number } = {}) {
    const clock = new ManualClock();
    const modules = names.map((name) => defineModule({ name, requires: { tags: [name] }, run: () => null }));
    const pipeline = definePipeline({ name: 'output-wait', modules });
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 3_600_000 });
    for (const name of names) {
      registry.register({
        id: name,
        endpoint: `http://${name}:9000`,
        capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [name] },
        pipeline: { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: names },
      });
    }
    const executionLogs = new ExecutionLogs();
    /** The executionId each module ran as (its worker is named as it is). */
    const executions = new Map<string, string>();
    const client = instantWorkerClient({
      onExecute: ({ executionId, moduleTypeName }) => executions.set(moduleTypeName, executionId),
    }) as unknown as WorkerClient;
    const events: RunEvent[] = [];
    let ended = false;
    const running = runPipeline({
      pipeline,
      registry,
      logger: pino({ level: 'silent' }),
      clock,
      createClient: () => client,
      executionLogs,
      onEvent: (event) => events.push(event),
      outputGraceMs: 2_000,
      ...options,
    }).finally(() => (ended = true));
    const send = (module: string, fromSeq: number, count: number, final = false) =>
      executionLogs.append(executions.get(module)!, module, { fromSeq, lines: lines(fromSeq, count), final });
    /** `batches` batches of `size` lines from `module`'s worker, `gapMs` apart, the run still waiting after each; then its final batch. */
    const shipWhileWaiting = async (module: string, batches: number, size: number, gapMs: number) => {
      for (let batch = 0; batch < batches; batch++) {
        await send(module, batch * size, size);
        await clock.advance(gapMs);
        expect(ended).toBe(false);
      }
      await send(module, batches * size, 0, true);
    };
    return { clock, running, events, send, shipWhileWaiting, ended: () => ended, executions };
  }

  it('keeps waiting while the worker keeps sending after its answer (the grace starts again with each batch), until its final batch', async () => {
    const { clock, running, events, shipWhileWaiting, ended } = setup(['loud']);
    await clock.advance(0);
    expect(events.some((event) => event.type === 'module-finished')).toBe(true);
    // 10 batches 1.5 s apart: 15 s in all, where a fixed 2 s grace gave up after the second.
    await shipWhileWaiting('loud', 10, 100, 1_500);
    await clock.advance(50);
    expect(ended()).toBe(true);
    const result = await running;
    expect(result.status).toBe('Successful');
    const output = events.filter((event) => event.type === 'output');
    expect(output.flatMap((event) => event.lines)).toHaveLength(1_000);
    expect(output.at(-1)).toMatchObject({ module: 'loud', closed: true });
    expect(events.filter((event) => event.type === 'output-incomplete')).toEqual([]);
  });

  it("gives up a worker that stopped sending once the grace passed since its last line, while another's lines still come, and says what it received", async () => {
    const { clock, running, events, send, shipWhileWaiting, ended } = setup(['stalled', 'busy']);
    await clock.advance(0);
    expect(events.filter((event) => event.type === 'module-finished')).toHaveLength(2);
    await send('stalled', 0, 3);
    // `busy` ships for 6 s more; `stalled` sends nothing after its 3 lines and never closes.
    await shipWhileWaiting('busy', 6, 10, 1_000);
    // The busy worker's log closed; the stalled one's grace ended long ago: the run ends now.
    await clock.advance(50);
    expect(ended()).toBe(true);
    await running;
    const incomplete = events.filter((event) => event.type === 'output-incomplete');
    expect(incomplete).toEqual([
      {
        type: 'output-incomplete',
        module: 'stalled',
        attempt: 1,
        workerId: 'stalled',
        linesReceived: 3,
        reason: 'silent',
        waitedMs: 2_000,
      },
    ]);
    expect(formatEvent(incomplete[0]!)).toBe(
      '[mpd] ⚠ output of stalled on stalled incomplete: 3 line(s) received, then its worker sent nothing for 2.00s; the rest is dropped',
    );
  });

  it('a worker that sends nothing after its answer is given up after the grace', async () => {
    const { clock, running, events, ended } = setup(['silent']);
    await clock.advance(1_950);
    expect(ended()).toBe(false);
    await clock.advance(100);
    expect(ended()).toBe(true);
    await running;
    expect(events.filter((event) => event.type === 'output-incomplete')).toMatchObject([
      { module: 'silent', linesReceived: 0, reason: 'silent' },
    ]);
  });

  it('stops at maxOutputWaitMs however busy the worker still is, and says so', async () => {
    const { clock, running, events, send, ended } = setup(['trickle'], { maxOutputWaitMs: 10_000 });
    await clock.advance(0);
    let seq = 0;
    for (let second = 0; second < 9; second++) {
      await send('trickle', seq, 1);
      seq += 1;
      await clock.advance(1_000);
      expect(ended()).toBe(false);
    }
    await send('trickle', seq, 1);
    await clock.advance(1_050);
    expect(ended()).toBe(true);
    await running;
    const incomplete = events.filter((event) => event.type === 'output-incomplete');
    expect(incomplete).toMatchObject([{ module: 'trickle', linesReceived: 10, reason: 'limit', waitedMs: 10_000 }]);
    expect(formatEvent(incomplete[0]!)).toMatch(
      /output of trickle on trickle incomplete: 10 line\(s\) received, then the run's wait for output reached its limit \(.+\); the rest is dropped$/,
    );
  });
});

describe('runPipeline: an attempt its worker refused before it ran', () => {
  it('has no output to wait for: no output-incomplete for the refused attempts, the real attempt reported as usual; the summary counts the refusals apart', async () => {
    const module = defineModule({ name: 'seed', run: () => null });
    const pipeline = definePipeline({ name: 'refused-output', modules: [module] });
    const executionLogs = new ExecutionLogs();
    const time = Date.UTC(2026, 0, 1);
    const executions: string[] = [];
    // A worker still registering again (its registration's answer was lost): 503 WorkerNotReady
    // to its first 2 execute calls; then it runs the module and ships its output after its answer.
    const server = createServer((request, response) => {
      let text = '';
      request.on('data', (chunk: Buffer) => (text += chunk.toString()));
      request.on('end', () => {
        const { executionId } = JSON.parse(text) as { executionId: string };
        executions.push(executionId);
        if (executions.length <= 2) {
          response.writeHead(503, { 'content-type': 'application/json' });
          response.end(
            JSON.stringify({
              success: false,
              code: 'WorkerNotReady',
              errorMessage: 'the worker has not completed its first registration',
            }),
          );
          return;
        }
        const now = new Date().toISOString();
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(
          JSON.stringify({
            success: true,
            serializedResult: 'null',
            startTime: now,
            endTime: now,
            duration: '00:00:00',
          }),
        );
        setTimeout(() => {
          void executionLogs.append(executionId, 'w1', {
            fromSeq: 0,
            lines: [{ time, stream: 'stdout', text: 'seeded' }],
            final: true,
          });
        }, 100);
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 600_000 });
    registry.register({
      id: 'w1',
      endpoint: `http://127.0.0.1:${port}`,
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
      pipeline: { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: ['seed'] },
    });
    const events: RunEvent[] = [];
    const result = await runPipeline({
      pipeline,
      registry,
      logger: pino({ level: 'silent' }),
      executionLogs,
      // A refused attempt's log left open would be given up (and reported) after this.
      outputGraceMs: 1_000,
      onEvent: (event) => events.push(event),
    });
    expect(result.status).toBe('Successful');
    expect(result.modules[0]!.attempts.map((attempt) => attempt.outcome)).toEqual([
      'Rejected',
      'Rejected',
      'Succeeded',
    ]);
    expect(events.filter((event) => event.type === 'output-incomplete')).toEqual([]);
    // The attempt that ran is reported as usual, with its lines and its close.
    expect(events.filter((event) => event.type === 'output')).toEqual([
      {
        type: 'output',
        module: 'seed',
        attempt: 3,
        workerId: 'w1',
        lines: [{ time, stream: 'stdout', text: 'seeded' }],
        closed: true,
      },
    ]);
    // A batch for a refused attempt is not taken (no log kept for it).
    expect(await executionLogs.append(executions[0]!, 'w1', { fromSeq: 0, lines: [] })).toEqual({ kind: 'not-found' });
    expect(formatSummary(result)).toMatch(/^seed +Successful +w1 +1 \(2 refused\) /m);
  }, 30_000);
});
