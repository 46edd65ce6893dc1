/**
 * Module output (issue 13): captured on a worker, shipped to the orchestrator, kept per attempt
 * and reported. Modules run in module hosts (real processes) on a worker in this process; the
 * shipper's retries and bounds go through test-kit's fault proxy.
 */
import { createServer, type Server } from 'node:http';
import { readdirSync, readFileSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOrchestratorClient, createWorkerClient } from '@mpd/client';
import { loadPipelineFile } from '@mpd/pipeline';
import type { OutputLine } from '@mpd/contract';
import { LIMITS } from '@mpd/contract/limits';
import { createApp, ExecutionLogs, InMemoryNodeRegistry, runPipeline, type RunEvent } from '@mpd/orchestrator';
import { asTsxLoads, type FaultProxy, startFaultProxy } from '@mpd/test-kit';
import { OutputShipper } from '@mpd/worker';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, silent } from '../helpers/cluster.js';

/**
 * The spill files this process holds open under `spillDir`, as `/proc/self/fd/<n>` paths (they
 * read and stat the file though its path is unlinked): the shipper's in this test's process.
 */
function openSpillFiles(spillDir: string): string[] {
  const under = `${realpathSync(spillDir)}/`;
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(under) ? [`/proc/self/fd/${fd}`] : [];
    } catch {
      return []; // readdir's own descriptor, closed by now
    }
  });
}

const PIPELINE = fileURLToPath(new URL('../fixtures/output.pipeline.ts', import.meta.url));
const QUIET_PIPELINE = fileURLToPath(new URL('../fixtures/quiet-output.pipeline.ts', import.meta.url));
const SECRET = 'hunter2-output-secret';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mpd-module-output-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('module output across a cluster', () => {
  it.each([
    ['module hosts', 'process'],
    ["the worker's own process: console.* captured per execution", 'none'],
  ] as const)(
    'two modules at once on one worker (%s): every line attributed to its module, in order, the secret a tool printed masked',
    async (_, isolation) => {
      const dir = await tempDir();
      const cluster = new Cluster();
      cleanups.push(() => cluster.close());
      const orchestrator = await cluster.startOrchestrator();
      // A pipeline's fingerprint hashes its modules' code as loaded: vitest transforms the file
      // otherwise than tsx, which the module hosts load it with.
      const pipeline = { ...(await loadPipelineFile(PIPELINE)), ...asTsxLoads(PIPELINE) };
      const worker = await cluster.startWorker({ id: 'w-out', pipeline, slots: 2, workingDirectory: dir, isolation });
      await worker.link!.registered();
      const events: RunEvent[] = [];
      const result = await runPipeline({
        pipeline,
        registry: orchestrator.registry,
        endpointPolicy: orchestrator.endpointPolicy,
        executionLogs: orchestrator.executionLogs,
        logsDir: join(dir, 'logs'),
        secretEnvironmentVariables: { OUTPUT_SECRET: SECRET },
        logger: silent,
        onEvent: (event) => events.push(event),
      });
      expect(result.modules.map((module) => module.error?.message ?? module.status)).toEqual([
        'Successful',
        'Successful',
      ]);
      const started = events.filter((event) => event.type === 'module-started');
      // Both ran at once on the one worker: each started before the other finished.
      expect(started.map((event) => event.workerId)).toEqual(['w-out', 'w-out']);
      for (const name of ['alpha', 'beta']) {
        const other = name === 'alpha' ? 'beta' : 'alpha';
        const texts = events.flatMap((event) =>
          event.type === 'output' && event.module === name ? event.lines.map((line) => line.text) : [],
        );
        expect(texts.filter((text) => text.includes(other))).toEqual([]);
        expect(texts.filter((text) => text.startsWith(`${name} console`))).toEqual(
          Array.from({ length: 20 }, (_, index) => `${name} console ${index}`),
        );
        expect(texts.filter((text) => text.startsWith(`${name} logger`))).toEqual(
          Array.from({ length: 20 }, (_, index) => `${name} logger ${index}`),
        );
        expect(texts).toContain(`${name} tool sees ***`);
        expect(texts).toContain(`${name} tool stderr`);
        expect(texts).toContain(`${name} inherited sees ***`);
        // In a module host, no read or copy of it there: the command's stdout is the host's own.
        expect(texts).toContain(`${name} inherited direct ${isolation === 'process'}`);
        expect(texts).toContain(`${name} inherited stderr`);
        // A line longer than maxLineLength, cut into pieces that are masked each alone: the secret
        // across the cut is masked whole, none of it left in either piece (it was cut in two).
        for (const letter of ['y', 'w', 'z'])
          expect(texts.filter((text) => new RegExp(`^[${letter}*]+( tail)?$`).test(text)).join('')).toBe(
            `${letter.repeat(16_380)}***${letter.repeat(53_600)} tail`,
          );
        // In order within each pipe (console on stdout, the tool's stderr on stderr, ctx.logger over
        // the host channel (fd 3): three channels, read as they come); nothing lost after the module's answer.
        const stdout = events.flatMap((event) =>
          event.type === 'output' && event.module === name
            ? event.lines.filter((line) => line.stream === 'stdout').map((line) => line.text)
            : [],
        );
        expect(stdout.at(-1)).toBe(`${name} done`);
        const module = result.modules.find((candidate) => candidate.name === name)!;
        const file = module.attempts[0]!.log!;
        expect(file).toBe(join(dir, 'logs', name, '1.log'));
        const log = await readFile(file, 'utf8');
        expect(log).toMatch(new RegExp(`^\\S+Z log info ${name} logger 0$`, 'm'));
        expect(log).toMatch(new RegExp(`^\\S+Z stderr - ${name} tool stderr$`, 'm'));
        expect(log).toMatch(new RegExp(`^\\S+Z stderr - ${name} inherited stderr$`, 'm'));
        expect(log).toContain(`${name} tool sees ***`);
        expect(log).not.toContain(SECRET);
      }
      expect(JSON.stringify(events)).not.toContain(SECRET);
    },
  );
});

describe('a module that wrote nothing: no output batch at all (issue 14)', () => {
  it.each([
    ['module hosts', 'process'],
    ["the worker's own process", 'none'],
  ] as const)(
    "%s: its execute answer says `Mpd-Output: none` and closes its log, the run's end does not wait the grace; a module that wrote sends its lines and final batch as before; a caller that does not announce it gets the final batch",
    async (_, isolation) => {
      const dir = await tempDir();
      // No stand-in worker: the run's only worker is the real one below.
      const api = await startApi({ sender: false });
      const cluster = new Cluster();
      cleanups.push(() => cluster.close());
      const pipeline = { ...(await loadPipelineFile(QUIET_PIPELINE)), ...asTsxLoads(QUIET_PIPELINE) };
      const worker = await cluster.startWorker({
        id: 'w-quiet',
        pipeline,
        slots: 2,
        workingDirectory: dir,
        isolation,
        orchestratorUrl: `http://127.0.0.1:${api.port}`,
      });
      await worker.link!.registered();
      const events: RunEvent[] = [];
      const started = Date.now();
      const result = await runPipeline({
        pipeline,
        registry: api.registry,
        executionLogs: api.logs,
        logsDir: join(dir, 'logs'),
        // Far longer than the run: a log left open would hold its end this long.
        outputGraceMs: 30_000,
        logger: silent,
        onEvent: (event) => events.push(event),
      });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(result.modules.map((module) => module.error?.message ?? module.status)).toEqual([
        'Successful',
        'Successful',
      ]);
      const [quiet, loud] = result.modules.map((module) => module.attempts[0]!.executionId);
      expect(api.outputCalls.filter((call) => call.executionId === quiet)).toEqual([]);
      expect(api.outputCalls.filter((call) => call.executionId === loud).at(-1)).toEqual({
        executionId: loud,
        final: true,
      });
      const output = events.filter((event) => event.type === 'output');
      // The quiet module's log closed as an empty final batch closes it (grouped output prints on it).
      expect(output.filter((event) => event.module === 'quiet')).toEqual([
        { type: 'output', module: 'quiet', attempt: 1, workerId: 'w-quiet', lines: [], closed: true },
      ]);
      expect(output.flatMap((event) => (event.module === 'loud' ? event.lines.map((line) => line.text) : []))).toEqual(
        expect.arrayContaining(['loud console', 'loud logger']),
      );
      expect(result.modules[0]!.attempts[0]!.log).toBeUndefined();
      expect(result.modules[1]!.attempts[0]!.log).toBe(join(dir, 'logs', 'loud', '1.log'));

      // A caller that does not say it reads the header (an older orchestrator): the final batch, as before.
      const executionId = 'direct.quiet.1';
      api.logs.open({ executionId, workerId: 'w-quiet', module: 'quiet', attempt: 1 });
      const client = createWorkerClient({ baseUrl: worker.url, token: worker.link!.credential });
      cleanups.push(() => client.close());
      const answer = await client.execution.execute({
        body: {
          executionId,
          moduleTypeName: 'quiet',
          serializedModule: '',
          dependencyResults: {},
          environmentVariables: {},
        },
      });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('mpd-output')).toBeNull();
      await expect.poll(() => api.logs.closed(executionId), { timeout: 10_000 }).toBe(true);
      expect(api.outputCalls.filter((call) => call.executionId === executionId)).toEqual([
        { executionId, final: true },
      ]);
    },
  );
});

/** An orchestrator API ({@link startApi}) on 127.0.0.1, which records the output batches it takes. */
interface Api {
  port: number;
  registry: InMemoryNodeRegistry;
  logs: ExecutionLogs;
  /** The credential of the stand-in worker `w1` an OutputShipper sends as (`''` without one). */
  credential: string;
  /** Every output request, in the order they came: its execution and whether it said `final`. */
  outputCalls: { executionId: string; final: boolean }[];
  /** Calls `onAccepted` once an output batch was taken, before its answer is sent. */
  beforeAnswer(onAccepted: () => void): void;
  /** How many output requests came so far (counted as they arrive). */
  batches: () => number;
  /** Each output request's body size (bytes), in the order they came. */
  batchBytes: number[];
}

/**
 * Starts an orchestrator API (`createApp`) on 127.0.0.1, whose answers a test may hold back.
 * With `sender` (the default), it registers a stand-in worker `w1` for an OutputShipper to send
 * as: its endpoint refuses, so a run on this registry needs `{ sender: false }`.
 */
async function startApi({ sender = true }: { sender?: boolean } = {}): Promise<Api> {
  const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
  if (sender) {
    registry.register({
      id: 'w1',
      endpoint: 'http://127.0.0.1:1',
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
    });
  }
  const logs = new ExecutionLogs();
  const app = createApp({ registry, executionLogs: logs, logger: silent });
  let hook: (() => void) | undefined;
  let batches = 0;
  const outputCalls: Api['outputCalls'] = [];
  const batchBytes: number[] = [];
  const server: Server = createServer((req, res) => {
    const executionId = /^\/api\/executions\/([^/]+)\/output/.exec(req.url ?? '')?.[1];
    if (executionId !== undefined) {
      batches++;
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const bytes = Buffer.concat(chunks);
        batchBytes.push(bytes.length);
        const body = JSON.parse(bytes.toString('utf8')) as { final?: boolean };
        outputCalls.push({ executionId: decodeURIComponent(executionId), final: body.final === true });
      });
      const once = hook;
      hook = undefined;
      if (once) {
        const end = res.end.bind(res) as (...args: unknown[]) => void;
        res.end = ((...args: unknown[]) => {
          once();
          end(...args);
          return res;
        }) as typeof res.end;
      }
    }
    app(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    port: (server.address() as AddressInfo).port,
    registry,
    logs,
    credential: sender ? registry.credentialOf('w1')! : '',
    outputCalls,
    beforeAnswer: (onAccepted) => (hook = onAccepted),
    batches: () => batches,
    batchBytes,
  };
}

/** {@link startApi} behind test-kit's fault proxy (closed after the test). */
async function startApiBehindProxy(): Promise<{ api: Api; proxy: FaultProxy }> {
  const api = await startApi();
  const proxy = await startFaultProxy({ port: api.port });
  cleanups.push(() => proxy.close());
  return { api, proxy };
}

async function startShipper(
  proxy: FaultProxy,
  credential: string,
  spillDir: string,
  bounds = {},
): Promise<OutputShipper> {
  const client = createOrchestratorClient({ baseUrl: proxy.url });
  const shipper = new OutputShipper({
    client,
    workerId: 'w1',
    credential: () => credential,
    logger: silent,
    spillDir,
    flushIntervalMs: 20,
    initialBackoffMs: 20,
    maxBackoffMs: 100,
    ...bounds,
  });
  cleanups.push(async () => {
    await shipper.close();
    await client.close();
  });
  return shipper;
}

const lines = (logs: ExecutionLogs, executionId: string, seen: Map<string, string[]>) => {
  const texts: string[] = [];
  seen.set(executionId, texts);
  logs.open({
    executionId,
    workerId: 'w1',
    module: executionId,
    attempt: 1,
    onLines: (batch) => texts.push(...batch.map((line) => line.text)),
  });
};

describe('OutputShipper', () => {
  it('sends a batch again after the connection was reset with its answer, and no line arrives twice', async () => {
    const api = await startApi();
    const proxy = await startFaultProxy({ port: api.port });
    cleanups.push(() => proxy.close());
    const seen = new Map<string, string[]>();
    lines(api.logs, 'e1', seen);
    // The first batch is taken, then its connection is reset before the answer leaves.
    api.beforeAnswer(() => proxy.fault({ kind: 'reset' }));
    const shipper = await startShipper(proxy, api.credential, await tempDir());
    const writer = shipper.open('e1');
    for (let index = 0; index < 5; index++) writer.write('stdout', `line ${index}`);
    await expect.poll(() => proxy.stats.resets, { timeout: 5_000 }).toBeGreaterThan(0);
    proxy.heal();
    writer.write('stdout', 'line 5');
    writer.end();
    await expect.poll(() => api.logs.closed('e1'), { timeout: 10_000 }).toBe(true);
    expect(seen.get('e1')).toEqual(Array.from({ length: 6 }, (_, index) => `line ${index}`));
    // The first batch, then the same lines again (with the next) after the reset.
    expect(api.batches()).toBeGreaterThanOrEqual(2);
  });

  it('while the orchestrator is unreachable: keeps lines in memory, then in a spill file, then drops them and says how many', async () => {
    const api = await startApi();
    const proxy = await startFaultProxy({ port: api.port });
    cleanups.push(() => proxy.close());
    proxy.fault({ kind: 'reset' });
    const seen = new Map<string, string[]>();
    lines(api.logs, 'e2', seen);
    const spillDir = await tempDir();
    // About 60 bytes of JSON per line: 10 lines in memory, about 30 on disk, the rest dropped.
    const shipper = await startShipper(proxy, api.credential, spillDir, {
      bufferBytesPerExecution: 600,
      spillBytesPerExecution: 1_800,
    });
    const writer = shipper.open('e2');
    for (let index = 0; index < 200; index++) writer.write('stdout', `line ${String(index).padStart(3, '0')}`);
    writer.end();
    // Spilled: a file is open, none is in the directory (unlinked once open).
    expect(openSpillFiles(spillDir)).toHaveLength(1);
    expect(readdirSync(spillDir)).toEqual([]);
    await expect.poll(() => proxy.stats.resets, { timeout: 5_000 }).toBeGreaterThan(1);
    proxy.heal();
    await expect.poll(() => api.logs.closed('e2'), { timeout: 10_000 }).toBe(true);
    const texts = seen.get('e2')!;
    const kept = texts.slice(0, -1);
    // Every line kept, in order from the first; the marker last, counting the others.
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, index) => `line ${String(index).padStart(3, '0')}`));
    expect(kept.length).toBeGreaterThan(20);
    expect(kept.length).toBeLessThan(100);
    expect(texts.at(-1)).toBe(
      `[mpd] ${200 - kept.length} line(s) of output dropped: the worker could not ship them to the orchestrator in time and its buffer for this execution was full`,
    );
    // No spill file by any name once shipped.
    expect(readdirSync(spillDir)).toEqual([]);
  });

  it('lines of any text arrive as written, in memory and through the spill file: quotes, backslashes, control characters, non-ASCII, levels', async () => {
    const api = await startApi();
    const proxy = await startFaultProxy({ port: api.port });
    cleanups.push(() => proxy.close());
    const got: OutputLine[] = [];
    api.logs.open({
      executionId: 'e3',
      workerId: 'w1',
      module: 'e3',
      attempt: 1,
      onLines: (batch) => got.push(...batch),
    });
    // Unreachable at first, and a small buffer: most of these lines wait in the spill file.
    proxy.fault({ kind: 'reset' });
    const shipper = await startShipper(proxy, api.credential, await tempDir(), { bufferBytesPerExecution: 300 });
    const writer = shipper.open('e3');
    const texts = [
      'plain',
      'a "quoted" \\ back\\slash',
      'tab\there, bell \u0007, escape \u001b[31mred\u001b[0m, delete \u007f',
      'non-ASCII: é € 漢字 😀',
      '',
      '{"looks":"like JSON"},',
    ];
    for (const [index, text] of texts.entries()) {
      writer.write('stdout', text);
      writer.write('log', `${index} at warn: ${text}`, 'warn');
    }
    writer.end();
    await new Promise((resolve) => setTimeout(resolve, 100));
    proxy.heal();
    await expect.poll(() => api.logs.closed('e3'), { timeout: 10_000 }).toBe(true);
    expect(got.map(({ stream, level, text }) => ({ stream, level, text }))).toEqual(
      texts.flatMap((text, index) => [
        { stream: 'stdout', level: undefined, text },
        { stream: 'log', level: 'warn', text: `${index} at warn: ${text}` },
      ]),
    );
  });

  it('keeps nothing for an execution the orchestrator does not know (404): later lines are neither held nor spilled', async () => {
    const api = await startApi();
    const proxy = await startFaultProxy({ port: api.port });
    cleanups.push(() => proxy.close());
    const spillDir = await tempDir();
    const shipper = await startShipper(proxy, api.credential, spillDir, { bufferBytesPerExecution: 600 });
    const writer = shipper.open('ghost');
    writer.write('stdout', 'first');
    await expect.poll(() => api.batches(), { timeout: 5_000 }).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Past the memory buffer: lines kept for it would spill to a file now.
    for (let index = 0; index < 100; index++) writer.write('stdout', `line ${index}`);
    await expect.poll(() => readdirSync(spillDir), { timeout: 5_000 }).toEqual([]);
    expect(api.batches()).toBe(1);
  });

  it('while its module runs, an execution ships one batch per flush interval; once it ended, batch after batch', async () => {
    const api = await startApi();
    const proxy = await startFaultProxy({ port: api.port });
    cleanups.push(() => proxy.close());
    const seen = new Map<string, string[]>();
    lines(api.logs, 'paced', seen);
    lines(api.logs, 'marker', seen);
    // The interval is the test's to tick: an hour, so the shipper's timer never does, and the
    // test calls `flush()` (what the timer calls) itself. Counted in batches, not in
    // milliseconds: it counted the batches of 600 ms and timed the end, and failed on a loaded
    // machine.
    const shipper = await startShipper(proxy, api.credential, await tempDir(), {
      flushIntervalMs: 3_600_000,
      maxBatchLines: 100,
    });
    const writer = shipper.open('paced');
    // 2,000 lines at once: 20 full batches, which went out back to back as they came before.
    for (let index = 0; index < 2_000; index++) writer.write('stdout', `line ${index}`);
    // An execution that ended ships at once (its one batch): once it is in, the shipper had its
    // turns, and sent nothing of the running execution's without a tick.
    const marker = shipper.open('marker');
    marker.write('stdout', 'ended');
    marker.end();
    await expect.poll(() => api.logs.closed('marker'), { timeout: 10_000, interval: 20 }).toBe(true);
    expect(seen.get('paced')).toEqual([]);
    // One batch per tick, and no more until the next. A tick while the last batch's answer is
    // on its way sends nothing (one call at a time per execution): ticked again until a batch
    // goes, never once it went.
    for (let tick = 1; tick <= 3; tick++) {
      const tickUntilSent = () => {
        const arrived = seen.get('paced')!.length;
        if (arrived < tick * 100) shipper.flush();
        return arrived;
      };
      await expect.poll(tickUntilSent, { timeout: 10_000, interval: 20 }).toBe(tick * 100);
    }
    // Once it ended: the other 17 batches one after another, with no tick at all.
    writer.end();
    await expect.poll(() => api.logs.closed('paced'), { timeout: 30_000, interval: 20 }).toBe(true);
    expect(seen.get('paced')).toEqual(Array.from({ length: 2_000 }, (_, index) => `line ${index}`));
    expect(seen.get('marker')).toEqual(['ended']);
  });

  it("a command's lines taken as bytes are masked when shipped, through the spill file too, which only the worker's user reads", async () => {
    const api = await startApi();
    const proxy = await startFaultProxy({ port: api.port });
    cleanups.push(() => proxy.close());
    const seen = new Map<string, string[]>();
    lines(api.logs, 'bytes', seen);
    proxy.fault({ kind: 'reset' });
    const spillDir = await tempDir();
    // A small buffer: every block after the first waits in the spill file.
    const shipper = await startShipper(proxy, api.credential, spillDir, { bufferBytesPerExecution: 100 });
    const writer = shipper.open('bytes');
    const mask = (text: string) => text.replaceAll(SECRET, '***');
    const blocks = [
      `crlf line\r\nsees ${SECRET}\n`,
      `non-ASCII: é 漢字\n`,
      `${'x'.repeat(200)}\n`,
      `last ${SECRET} line\n`,
    ];
    for (const block of blocks) writer.writeBytes!('stdout', Buffer.from(block), mask);
    writer.end();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const [spill] = openSpillFiles(spillDir);
    expect(statSync(spill!).mode & 0o777).toBe(0o600);
    // Unmasked on disk, masked on the wire.
    expect(readFileSync(spill!, 'utf8')).toContain(SECRET);
    proxy.heal();
    await expect.poll(() => api.logs.closed('bytes'), { timeout: 10_000 }).toBe(true);
    expect(seen.get('bytes')).toEqual(['crlf line', 'sees ***', 'non-ASCII: é 漢字', 'x'.repeat(200), 'last *** line']);
    // Kept open for the next execution, zeroed: none of its lines left.
    await expect.poll(() => readFileSync(spill!, 'utf8').includes(SECRET), { timeout: 5_000 }).toBe(false);
  });

  it("a spill file, once its execution's output is shipped, holds none of its lines (zeroed) and is the next execution's spill file (its pages reused); no spill file is ever in the directory, in use or kept (a killed worker leaves none)", async () => {
    const { api, proxy } = await startApiBehindProxy();
    const seen = new Map<string, string[]>();
    lines(api.logs, 'first', seen);
    lines(api.logs, 'second', seen);
    proxy.fault({ kind: 'reset' });
    const spillDir = await tempDir();
    // No room in memory: every block after the first goes through the spill file.
    const shipper = await startShipper(proxy, api.credential, spillDir, { bufferBytesPerExecution: 100 });
    const mask = (text: string) => text.replaceAll(SECRET, '***');
    const write = (executionId: string, count: number) => {
      const writer = shipper.open(executionId);
      const written = Array.from({ length: count }, (_, index) => `${executionId} ${index} ${SECRET}`);
      for (const line of written) writer.writeBytes!('stdout', Buffer.from(`${line}\n`), mask);
      writer.end();
      return written.map(mask);
    };
    const first = write('first', 300);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // In use, by its descriptor only: nothing in the directory a killed worker would leave.
    const [spill] = openSpillFiles(spillDir);
    const firstSpill = statSync(spill!);
    expect(firstSpill.size).toBeGreaterThan(0);
    expect(readdirSync(spillDir)).toEqual([]);
    proxy.heal();
    await expect.poll(() => api.logs.closed('first'), { timeout: 10_000 }).toBe(true);
    expect(seen.get('first')).toEqual(first);
    // Shipped: the file kept open for the next execution, no byte of its lines left in it (zeros
    // only), and still nothing in the directory (no `free-*` file).
    await expect.poll(() => readFileSync(spill!).every((byte) => byte === 0), { timeout: 5_000 }).toBe(true);
    expect(readFileSync(spill!).length).toBeGreaterThanOrEqual(firstSpill.size);
    expect(readdirSync(spillDir)).toEqual([]);
    // The next execution that spills takes that file (the same inode).
    proxy.fault({ kind: 'reset' });
    const second = write('second', 100);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(openSpillFiles(spillDir).map((path) => statSync(path).ino)).toEqual([firstSpill.ino]);
    expect(readFileSync(spill!, 'utf8')).toContain(SECRET);
    expect(readdirSync(spillDir)).toEqual([]);
    proxy.heal();
    await expect.poll(() => api.logs.closed('second'), { timeout: 10_000 }).toBe(true);
    expect(seen.get('second')).toEqual(second);
    await expect.poll(() => readFileSync(spill!).every((byte) => byte === 0), { timeout: 5_000 }).toBe(true);
    expect(readdirSync(spillDir)).toEqual([]);
    // Closed: no file open either.
    await shipper.close();
    expect(openSpillFiles(spillDir)).toEqual([]);
    expect(readdirSync(spillDir)).toEqual([]);
  });

  it("a command's block of plain lines is cut where a batch ends (by lines, by bytes) and where the orchestrator accepted part of it: every line once, in order", async () => {
    const { api, proxy } = await startApiBehindProxy();
    const seen = new Map<string, string[]>();
    lines(api.logs, 'cut', seen);
    lines(api.logs, 'wide', seen);
    // The first answer is lost: that batch is sent again, and taken once.
    api.beforeAnswer(() => proxy.fault({ kind: 'reset' }));
    const shipper = await startShipper(proxy, api.credential, await tempDir(), { maxBatchLines: 7 });
    const writer = shipper.open('cut');
    const mask = (text: string) => text.replaceAll(SECRET, '***');
    const written: string[] = [];
    const writeBlock = (block: string[]) => {
      written.push(...block.map(mask));
      writer.writeBytes!('stdout', Buffer.from(`${block.join('\n')}\n`), mask);
    };
    // Blocks of plain lines (one with a secret), one with a line that is not plain, a one-line block, an empty line.
    writeBlock(Array.from({ length: 25 }, (_, index) => `plain ${index} {"not":"json"}, ${index === 3 ? SECRET : ''}`));
    writeBlock(['before', 'non-ASCII é', 'after']);
    writeBlock(['alone']);
    writeBlock(Array.from({ length: 16 }, (_, index) => (index === 5 ? '' : `more ${index}`)));
    writer.write('log', 'a logger line', 'info');
    written.push('a logger line');
    writer.end();
    await expect.poll(() => proxy.stats.resets, { timeout: 5_000 }).toBeGreaterThan(0);
    proxy.heal();
    await expect.poll(() => api.logs.closed('cut'), { timeout: 10_000 }).toBe(true);
    expect(seen.get('cut')).toEqual(written);
    // 46 lines, 7 a batch: 7 batches, and the first sent again.
    expect(api.batches()).toBeGreaterThanOrEqual(8);
    // 300 lines of 2,000 characters (600 KB) in one block: more than a batch's 512 KiB. A shipper
    // with the contract's 1,000 lines a batch.
    const before = api.batchBytes.length;
    const wideShipper = await startShipper(proxy, api.credential, await tempDir());
    const wide = wideShipper.open('wide');
    const long = Array.from({ length: 300 }, (_, index) => `${index} `.padEnd(2_000, 'w'));
    wide.writeBytes!('stdout', Buffer.from(`${long.join('\n')}\n`), mask);
    // Then 990 short ones: after the cut by bytes, a batch ends inside their run (1,000 lines a batch).
    const short = Array.from({ length: 990 }, (_, index) => `short ${index}`);
    wide.writeBytes!('stdout', Buffer.from(`${short.join('\n')}\n`), mask);
    wide.end();
    await expect.poll(() => api.logs.closed('wide'), { timeout: 10_000 }).toBe(true);
    expect(seen.get('wide')).toEqual([...long, ...short]);
    const sizes = api.batchBytes.slice(before);
    expect(sizes.length).toBeGreaterThanOrEqual(2);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(LIMITS.output.maxBatchBytes);
  });

  it('the spill file read back in blocks: chunks across a block, one larger than a block, and the file written again from its start once read back', async () => {
    const api = await startApi();
    const proxy = await startFaultProxy({ port: api.port });
    cleanups.push(() => proxy.close());
    const seen = new Map<string, string[]>();
    lines(api.logs, 'blocks', seen);
    // No room in memory: every block goes through the spill file.
    const shipper = await startShipper(proxy, api.credential, await tempDir(), { bufferBytesPerExecution: 100 });
    const writer = shipper.open('blocks');
    const mask = (text: string) => text;
    const written: string[] = [];
    const writeBlock = (phase: string, count: number) => {
      const block = Array.from({ length: count }, (_, index) => `${phase} ${written.length + index}`.padEnd(99, '.'));
      written.push(...block);
      writer.writeBytes!('stdout', Buffer.from(`${block.join('\n')}\n`), mask);
    };
    // A few KiB, read back in one block; once shipped, the file is written again from its start
    // with other lines at the same places (the block read before must not be taken for them).
    for (let index = 0; index < 5; index++) writeBlock('first', 7);
    await expect.poll(() => seen.get('blocks')!.length, { timeout: 10_000 }).toBe(written.length);
    // Then blocks of many sizes (some across the end of a 256 KiB read), and one of 300 KB.
    for (let index = 0; index < 60; index++) writeBlock('second', 1 + ((index * 37) % 90));
    writeBlock('large', 3_000);
    writeBlock('after', 3);
    writer.end();
    await expect.poll(() => api.logs.closed('blocks'), { timeout: 10_000 }).toBe(true);
    expect(seen.get('blocks')).toEqual(written);
  });

  // 5 MB rather than 20: past the 64 KiB buffer it spills all the same, and is read back in
  // about 20 blocks of 256 KiB rather than 80; 20 MB took over a minute on a loaded machine.
  // `pnpm bench --only output` (benchmark 5) checks 200,000 lines (19.3 MiB) in order each run.
  it('a 5 MB log (50,000 lines) arrives whole and in order, to the last line, in its attempt file', async () => {
    const api = await startApi();
    const proxy = await startFaultProxy({ port: api.port });
    cleanups.push(() => proxy.close());
    const dir = await tempDir();
    const file = join(dir, 'big.log');
    let count = 0;
    let outOfOrder = 0;
    api.logs.open({
      executionId: 'big',
      workerId: 'w1',
      module: 'big',
      attempt: 1,
      file,
      onLines: (batch) => {
        for (const line of batch) if (line.text.slice(0, 6) !== String(count++).padStart(6, '0')) outOfOrder++;
      },
    });
    // A small memory buffer: each burst spills to disk, and is read back in order.
    const shipper = await startShipper(proxy, api.credential, dir, { bufferBytesPerExecution: 64 * 1024 });
    const writer = shipper.open('big');
    const filler = 'x'.repeat(94);
    const total = 50_000;
    // Written as a busy module writes: in bursts, with the event loop turning between them.
    for (let index = 0; index < total; index++) {
      writer.write('stdout', `${String(index).padStart(6, '0')}${filler}`);
      if (index % 2_000 === 1_999) await new Promise((resolve) => setImmediate(resolve));
    }
    writer.end();
    await expect.poll(() => api.logs.closed('big'), { timeout: 60_000, interval: 100 }).toBe(true);
    expect(count).toBe(total);
    expect(outOfOrder).toBe(0);
    const log = await readFile(file, 'utf8');
    expect(log.length).toBeGreaterThan(5_000_000);
    expect(log.endsWith(` stdout - 049999${filler}\n`)).toBe(true);
  }, 90_000);
});
