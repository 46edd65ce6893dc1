/**
 * The spec's curl examples (shared/spec/http-api.md, "Testing the API") must work "as
 * written" against the real CLIs. This starts `mpd-orchestrator` and `mpd-worker` as
 * processes, then runs the spec's three curl commands with the real `curl` binary from
 * examples/ (so `-d @worker-registration.json` and `-d @execution-request.json` resolve),
 * changing only host:port to the ephemeral ports the servers picked.
 */
import { execFile } from 'node:child_process';
import { readFileSync, rmdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cliOf, spawnProcess, type RunningProcess } from '@mpd/test-kit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const examplesDir = `${repo}examples`;
const pipelineFile = `${repo}apps/demo/src/demo.pipeline.ts`;

/** The spec's three curl commands, verbatim ("Testing the API" in shared/spec/http-api.md). */
const SPEC_TEXT = String.raw`
# Register worker
curl -X POST http://localhost:8080/api/workers/register \
  -H "Content-Type: application/json" \
  -d @worker-registration.json

# Send heartbeat
curl -X POST http://localhost:8080/api/workers/heartbeat \
  -H "Content-Type: application/json" \
  -d '{"workerId":"worker-123","currentLoad":2}'

# Execute module
curl -X POST http://localhost:9000/api/execution/execute \
  -H "Content-Type: application/json" \
  -d @execution-request.json
`;

/** Splits the shell text into each command's arguments (after `curl`): continuations, quotes. */
function parseCommands(text: string): string[][] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((line) => line.startsWith('curl '))
    .map((line) => [...line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!).slice(1));
}

const [register, heartbeat, execute] = parseCommands(SPEC_TEXT);
const SPEC = { register: register!, heartbeat: heartbeat!, execute: execute! };

const servers: RunningProcess[] = [];
let orchestratorUrl: string;
let workerUrl: string;

/** Starts a CLI under tsx and resolves with the URL its first stdout line announces. */
async function startCli(pkg: 'orchestrator' | 'worker', args: string[], pattern: RegExp): Promise<string> {
  const server = spawnProcess({ script: cliOf(pkg), args, cwd: repo, env: { MPD_LOG_LEVEL: 'warn' } });
  servers.push(server);
  const line = await server.firstLine();
  const match = pattern.exec(line);
  if (!match) throw new Error(`${pkg}: unexpected first line ${JSON.stringify(line)}`);
  return match[1]!;
}

/**
 * Runs curl with `-s -w '\n%{http_code}'` in examples/, pointing the spec's
 * localhost:8080 / localhost:9000 at the servers' real addresses.
 */
async function curl(args: readonly string[]): Promise<{ status: number; body: any; text: string }> {
  const target = args.map((arg) =>
    arg.replace('http://localhost:8080', orchestratorUrl).replace('http://localhost:9000', workerUrl),
  );
  const { stdout } = await run('curl', ['-s', '-w', '\n%{http_code}', ...target], { cwd: examplesDir });
  const cut = stdout.lastIndexOf('\n');
  const text = stdout.slice(0, cut);
  return { status: Number(stdout.slice(cut + 1)), body: text ? JSON.parse(text) : undefined, text };
}

const post = (url: string, body: unknown): string[] => [
  '-X',
  'POST',
  url,
  '-H',
  'Content-Type: application/json',
  '-d',
  JSON.stringify(body),
];

beforeAll(async () => {
  [orchestratorUrl, workerUrl] = await Promise.all([
    startCli('orchestrator', ['--port', '0', '--host', '127.0.0.1'], /^mpd orchestrator listening on (http:\/\/\S+)$/),
    startCli(
      'worker',
      // Open mode: the spec's curl examples carry no token, and this worker registers nowhere.
      ['--port', '0', '--host', '127.0.0.1', '--pipeline', pipelineFile, '--open'],
      /^mpd worker \S+ listening on (http:\/\/\S+)$/,
    ),
  ]);
}, 20_000);

afterAll(async () => {
  await Promise.all(servers.map((server) => server.stop('SIGTERM', 5_000))); // SIGKILL after 5 s
  // The worker created the request's working directory; remove it if the module left it empty.
  const { workingDirectory } = JSON.parse(readFileSync(`${examplesDir}/execution-request.json`, 'utf8')) as {
    workingDirectory: string;
  };
  try {
    rmdirSync(workingDirectory);
  } catch {
    // not empty, or already gone
  }
});

describe('the spec curl examples against the real CLIs', () => {
  it('reads the spec commands as a shell would', () => {
    expect(SPEC.heartbeat).toEqual([
      '-X',
      'POST',
      'http://localhost:8080/api/workers/heartbeat',
      '-H',
      'Content-Type: application/json',
      '-d',
      '{"workerId":"worker-123","currentLoad":2}',
    ]);
    expect(SPEC.register.at(-1)).toBe('@worker-registration.json');
    expect(SPEC.execute.at(-1)).toBe('@execution-request.json');
  });

  it('examples/worker-registration.json is the spec example: register answers 200', async () => {
    const { status, body } = await curl(SPEC.register);
    expect(status).toBe(200);
    // The spec's answer, plus the worker's credential and the heartbeat timeout it fences by (mpd additions).
    expect(body).toEqual({
      success: true,
      workerId: 'worker-machine1-abc123',
      heartbeatIntervalSeconds: 30,
      credential: expect.stringMatching(/^mpdw_[\w-]{43}$/),
      heartbeatTimeoutSeconds: 120,
    });
  });

  it('heartbeat of the unknown worker-123 answers 404, telling it to register again', async () => {
    const { status, body } = await curl(SPEC.heartbeat);
    expect(status).toBe(404);
    expect(body).toMatchObject({ success: false, code: 'WorkerNotFound' });
    expect(body.errorMessage).toMatch(/worker-123.*register again/);
  });

  it('heartbeat answers 200 once worker-123 is registered', async () => {
    const registration = JSON.parse(readFileSync(`${examplesDir}/worker-registration.json`, 'utf8'));
    registration.workerNode.id = 'worker-123';
    const registered = await curl(post(`${orchestratorUrl}/api/workers/register`, registration));
    expect(registered.status).toBe(200);
    expect(registered.body).toMatchObject({ success: true, workerId: 'worker-123' });

    const { status, body } = await curl(SPEC.heartbeat);
    expect(status).toBe(200);
    expect(body).toEqual({ acknowledged: true, shouldDrain: false });
  });

  it('GET /api/workers lists both registered workers', async () => {
    const { status, body } = await curl([`${orchestratorUrl}/api/workers`]);
    expect(status).toBe(200);
    expect(body.map((worker: { id: string }) => worker.id)).toEqual(['worker-machine1-abc123', 'worker-123']);
    expect(body[0]).toMatchObject({
      endpoint: 'http://worker1:9000',
      capabilities: {
        os: 'linux',
        installedTools: ['docker', 'dotnet', 'node'],
        maxParallelModules: 4,
        tags: ['gpu-enabled', 'high-memory'],
      },
      currentLoad: 0,
      status: 'Available',
    });
    expect(body[1]).toMatchObject({ id: 'worker-123', currentLoad: 2 });
  });

  it('GET /api/health on the orchestrator', async () => {
    const { status, body } = await curl([`${orchestratorUrl}/api/health`]);
    expect(status).toBe(200);
    expect(body).toMatchObject({ status: 'healthy', availableWorkers: 2 });
    expect(Number.isNaN(Date.parse(body.timestamp))).toBe(false);
  });

  it('DELETE /api/workers/worker-machine1-abc123 unregisters it', async () => {
    const { status, body } = await curl(['-X', 'DELETE', `${orchestratorUrl}/api/workers/worker-machine1-abc123`]);
    expect(status).toBe(200);
    expect(body).toEqual({ success: true });
    const after = await curl([`${orchestratorUrl}/api/workers`]);
    expect(after.body.map((worker: { id: string }) => worker.id)).toEqual(['worker-123']);
    const again = await curl(['-X', 'DELETE', `${orchestratorUrl}/api/workers/worker-machine1-abc123`]);
    expect(again.status).toBe(404);
  });

  it("examples/execution-request.json runs the demo pipeline's restore module: 200 with its result", async () => {
    const { status, body } = await curl(SPEC.execute);
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({ executionId: 'exec-123', success: true });
    expect(body.workerId).toMatch(/^worker-/);
    expect(body.duration).toMatch(/^\d\d:\d\d:\d\d/);
    const result = JSON.parse(body.serializedResult);
    expect(result.files.map((file: { path: string }) => file.path)).toContain('src/index.mjs');
    expect(result.sourceHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('GET /api/health on the worker', async () => {
    const { status, body } = await curl([`${workerUrl}/api/health`]);
    expect(status).toBe(200);
    expect(body).toMatchObject({ status: 'healthy', currentLoad: 0 });
    expect(body.maxLoad).toBeGreaterThanOrEqual(1);
  });

  it('POST /api/execution/cancel of an unknown execution answers 404', async () => {
    const { status, body } = await curl(
      post(`${workerUrl}/api/execution/cancel`, {
        executionId: 'exec-unknown',
        reason: 'Timeout exceeded',
        timestamp: '2025-09-30T10:05:00Z',
      }),
    );
    expect(status).toBe(404);
    expect(body).toMatchObject({ success: false, errorMessage: 'Execution not found' });
  });

  it('each server serves its OpenAPI document', async () => {
    const orchestrator = await curl([`${orchestratorUrl}/api/openapi.json`]);
    const worker = await curl([`${workerUrl}/api/openapi.json`]);
    expect(orchestrator.status).toBe(200);
    expect(Object.keys(orchestrator.body.paths)).toContain('/api/workers/register');
    expect(worker.status).toBe(200);
    expect(Object.keys(worker.body.paths)).toContain('/api/execution/execute');
  });
});
