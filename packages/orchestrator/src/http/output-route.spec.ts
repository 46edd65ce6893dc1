import { readFile, mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bearerHeader, createOrchestratorClient, type OrchestratorClient } from '@mpd/client';
import { LIMITS, type OutputLine } from '@mpd/contract';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../app.js';
import { InMemoryNodeRegistry } from '../registry/in-memory-node-registry.js';
import { attemptLogFile, ExecutionLogs } from '../runner/execution-logs.js';

const JOIN_TOKEN = 'join-token-0123456789abcdef';

interface Harness {
  url: string;
  client: OrchestratorClient;
  logs: ExecutionLogs;
  dir: string;
  /** Registers `workerId` and gives its credential. */
  credentialOf(workerId: string): Promise<string>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

async function start(): Promise<Harness> {
  const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 120_000 });
  const logs = new ExecutionLogs();
  const app = createApp({
    registry,
    executionLogs: logs,
    options: { joinToken: JOIN_TOKEN, validateResponses: true },
  });
  const server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = createOrchestratorClient({ baseUrl: url, timeoutMs: 2_000 });
  const dir = await mkdtemp(join(tmpdir(), 'mpd-output-'));
  cleanups.push(async () => {
    await client.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });
  const credentialOf = async (workerId: string): Promise<string> => {
    const registered = await client.workers.register({
      body: {
        workerNode: {
          id: workerId,
          endpoint: `http://${workerId}:9000`,
          capabilities: { os: 'linux', installedTools: [], maxParallelModules: 2, tags: [] },
        },
      },
      extraHeaders: bearerHeader(JOIN_TOKEN),
    });
    if (registered.status !== 200 || !registered.body.credential) throw new Error('registration failed');
    return registered.body.credential;
  };
  return { url, client, logs, dir, credentialOf };
}

const lines = (...texts: string[]): OutputLine[] =>
  texts.map((text, index) => ({ time: Date.UTC(2026, 0, 1, 0, 0, index), stream: 'stdout', text }));

describe('POST /api/executions/{executionId}/output', () => {
  it('appends lines to the attempt log; a batch sent again, or overlapping, writes no line twice', async () => {
    const { client, logs, dir, credentialOf } = await start();
    const credential = await credentialOf('w1');
    const file = attemptLogFile(dir, 'build', 1);
    const seen: string[] = [];
    // A module name with `/` travels percent-encoded, as one path segment.
    const executionId = 'run-1.tools/build.1';
    logs.open({
      executionId,
      workerId: 'w1',
      module: 'build',
      attempt: 1,
      file,
      onLines: (batch) => seen.push(...batch.map((line) => line.text)),
    });
    const send = (fromSeq: number, batch: OutputLine[], final?: boolean) =>
      client.executions.output({
        params: { executionId },
        body: { workerId: 'w1', fromSeq, lines: batch, ...(final ? { final } : {}) },
        extraHeaders: bearerHeader(credential),
      });
    expect(await send(0, lines('a', 'b'))).toMatchObject({ status: 200, body: { acceptedThrough: 2 } });
    // The same batch again (its answer was lost): nothing new.
    expect(await send(0, lines('a', 'b'))).toMatchObject({ status: 200, body: { acceptedThrough: 2 } });
    // Overlapping: only `c` is new.
    expect(await send(1, lines('b', 'c'))).toMatchObject({ status: 200, body: { acceptedThrough: 3 } });
    expect(await send(3, [], true)).toMatchObject({ status: 200, body: { acceptedThrough: 3 } });
    // Closed: a late line is not taken.
    expect(await send(3, lines('late'))).toMatchObject({ status: 200, body: { acceptedThrough: 3 } });
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(await readFile(file, 'utf8')).toBe(
      '2026-01-01T00:00:00.000Z stdout - a\n2026-01-01T00:00:01.000Z stdout - b\n2026-01-01T00:00:01.000Z stdout - c\n',
    );
    expect(logs.closed(executionId)).toBe(true);
    expect(logs.tail(executionId).map((line) => line.text)).toEqual(['a', 'b', 'c']);
  });

  it('answers 409 OutputGap with expectedSeq to a batch that starts past the next expected line', async () => {
    const { client, logs, credentialOf } = await start();
    const credential = await credentialOf('w1');
    logs.open({ executionId: 'e1', workerId: 'w1', module: 'build', attempt: 1 });
    const gap = await client.executions.output({
      params: { executionId: 'e1' },
      body: { workerId: 'w1', fromSeq: 5, lines: lines('f') },
      extraHeaders: bearerHeader(credential),
    });
    expect(gap).toMatchObject({ status: 409, body: { code: 'OutputGap', expectedSeq: 0 } });
  });

  it("refuses another worker's credential as if the execution did not exist (404), and a credential for another id (403)", async () => {
    const { client, logs, credentialOf } = await start();
    const own = await credentialOf('w1');
    const other = await credentialOf('w2');
    logs.open({ executionId: 'e1', workerId: 'w1', module: 'build', attempt: 1 });
    const batch = { workerId: 'w2', fromSeq: 0, lines: lines('x') };
    const foreign = await client.executions.output({
      params: { executionId: 'e1' },
      body: batch,
      extraHeaders: bearerHeader(other),
    });
    expect(foreign).toMatchObject({ status: 404, body: { code: 'ExecutionNotFound' } });
    const unknown = await client.executions.output({
      params: { executionId: 'nope' },
      body: { ...batch, workerId: 'w1' },
      extraHeaders: bearerHeader(own),
    });
    expect(unknown).toMatchObject({ status: 404, body: { code: 'ExecutionNotFound' } });
    const posing = await client.executions.output({
      params: { executionId: 'e1' },
      body: { ...batch, workerId: 'w1' },
      extraHeaders: bearerHeader(other),
    });
    expect(posing).toMatchObject({ status: 403, body: { code: 'Forbidden' } });
    expect(logs.tail('e1')).toEqual([]);
  });

  it('answers 401 without a credential and 403 to the join token, before reading the body', async () => {
    const { url, logs } = await start();
    logs.open({ executionId: 'e1', workerId: 'w1', module: 'build', attempt: 1 });
    const post = (headers: Record<string, string>) =>
      fetch(`${url}/api/executions/e1/output`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: '{ not even json',
      });
    const anonymous = await post({});
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ code: 'Unauthorized' });
    const join = await post(bearerHeader(JOIN_TOKEN));
    expect(join.status).toBe(403);
  });

  it('refuses a batch over the line count and a line over the length with 400 naming the field', async () => {
    const { client, logs, credentialOf } = await start();
    const credential = await credentialOf('w1');
    logs.open({ executionId: 'e1', workerId: 'w1', module: 'build', attempt: 1 });
    const tooMany = await client.executions.output({
      params: { executionId: 'e1' },
      body: {
        workerId: 'w1',
        fromSeq: 0,
        lines: lines(...Array.from({ length: LIMITS.output.maxLinesPerBatch + 1 }, () => 'x')),
      },
      extraHeaders: bearerHeader(credential),
    });
    expect(tooMany).toMatchObject({ status: 400, body: { code: 'ValidationFailed' } });
    expect(JSON.stringify(tooMany.body)).toContain('body.lines');
    const tooLong = await client.executions.output({
      params: { executionId: 'e1' },
      body: { workerId: 'w1', fromSeq: 0, lines: lines('y'.repeat(LIMITS.output.maxLineLength + 1)) },
      extraHeaders: bearerHeader(credential),
    });
    expect(tooLong).toMatchObject({ status: 400, body: { code: 'ValidationFailed' } });
    expect(JSON.stringify(tooLong.body)).toContain('body.lines.0.text');
    expect(logs.tail('e1')).toEqual([]);
  });
});

describe('attemptLogFile', () => {
  it('keeps a module name that holds `/` and `..` inside the logs directory, as one path segment', () => {
    expect(attemptLogFile('/logs', 'a/../../etc', 2)).toBe('/logs/a%2F..%2F..%2Fetc/2.log');
  });
});
