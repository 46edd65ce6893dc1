/**
 * Every example body of the spec (shared/spec/http-api.md), verbatim, must parse with the
 * contract's schemas: the spec is a promise to users.
 */
import { describe, expect, it } from 'vitest';
import type { ZodTypeAny } from 'zod';
import { orchestratorContract } from './orchestrator.contract.js';
import { workerContract } from './worker.contract.js';

const ex = {
  register: {
    workerNode: {
      id: 'worker-machine1-abc123',
      endpoint: 'http://worker1:9000',
      capabilities: {
        os: 'linux',
        installedTools: ['docker', 'dotnet', 'node'],
        maxParallelModules: 4,
        tags: ['gpu-enabled', 'high-memory'],
      },
      lastHeartbeat: '2025-09-30T10:00:00Z',
      currentLoad: 0,
      status: 'Available',
    },
    timestamp: '2025-09-30T10:00:00Z',
  },
  registerOk: { success: true, workerId: 'worker-machine1-abc123', heartbeatIntervalSeconds: 30 },
  registerBad: { success: false, errorMessage: 'Worker capabilities are invalid' },
  heartbeat: { workerId: 'worker-machine1-abc123', currentLoad: 2, timestamp: '2025-09-30T10:00:30Z' },
  heartbeatCurl: { workerId: 'worker-123', currentLoad: 2 },
  heartbeatOk: { acknowledged: true, shouldDrain: false },
  workers: [
    {
      id: 'worker-machine1-abc123',
      endpoint: 'http://worker1:9000',
      capabilities: { os: 'linux', installedTools: ['docker', 'dotnet'], maxParallelModules: 4, tags: [] },
      lastHeartbeat: '2025-09-30T10:00:30Z',
      currentLoad: 2,
      status: 'Busy',
    },
  ],
  unregisterOk: { success: true },
  orchestratorHealth: { status: 'healthy', availableWorkers: 3, timestamp: '2025-09-30T10:00:00Z' },
  execute: {
    executionId: 'exec-123',
    serializedModule: '{...}',
    moduleTypeName: 'MyApp.Modules.BuildModule, MyApp',
    dependencyResults: { 'MyApp.Modules.RestoreModule, MyApp': '{...}' },
    environmentVariables: { CI: 'true', BUILD_NUMBER: '42' },
    workingDirectory: '/app/workspace',
    timeout: '01:00:00',
    timestamp: '2025-09-30T10:00:00Z',
  },
  executeOk: {
    executionId: 'exec-123',
    success: true,
    serializedResult: '{...}',
    duration: '00:02:30',
    startTime: '2025-09-30T10:00:00Z',
    endTime: '2025-09-30T10:02:30Z',
    workerId: 'worker-machine1-abc123',
  },
  executeFailed: {
    executionId: 'exec-123',
    success: false,
    errorMessage: 'Module execution failed',
    exceptionType: 'System.InvalidOperationException',
    stackTrace: 'at ...',
    duration: '00:00:05',
    startTime: '2025-09-30T10:00:00Z',
    endTime: '2025-09-30T10:00:05Z',
    workerId: 'worker-machine1-abc123',
  },
  cancel: { executionId: 'exec-123', reason: 'Timeout exceeded', timestamp: '2025-09-30T10:05:00Z' },
  cancelOk: { success: true },
  cancelNotFound: { success: false, errorMessage: 'Execution not found' },
  workerHealth: { status: 'healthy', currentLoad: 2, maxLoad: 4, timestamp: '2025-09-30T10:00:00Z' },
};

const o = orchestratorContract;
const w = workerContract;
const schema = (value: unknown): ZodTypeAny => value as ZodTypeAny;

describe('spec examples parse with the contract', () => {
  it.each<[string, unknown, unknown]>([
    ['POST /api/workers/register body', o.workers.register.body, ex.register],
    ['POST /api/workers/register 200', o.workers.register.responses[200], ex.registerOk],
    ['POST /api/workers/register 400', o.workers.register.responses[400], ex.registerBad],
    ['POST /api/workers/heartbeat body', o.workers.heartbeat.body, ex.heartbeat],
    ['POST /api/workers/heartbeat body (curl, no timestamp)', o.workers.heartbeat.body, ex.heartbeatCurl],
    ['POST /api/workers/heartbeat 200', o.workers.heartbeat.responses[200], ex.heartbeatOk],
    ['GET /api/workers 200', o.workers.list.responses[200], ex.workers],
    ['DELETE /api/workers/{id} 200', o.workers.unregister.responses[200], ex.unregisterOk],
    ['GET /api/health (orchestrator) 200', o.health.get.responses[200], ex.orchestratorHealth],
    ['POST /api/execution/execute body', w.execution.execute.body, ex.execute],
    ['POST /api/execution/execute 200', w.execution.execute.responses[200], ex.executeOk],
    ['POST /api/execution/execute 500', w.execution.execute.responses[500], ex.executeFailed],
    ['POST /api/execution/cancel body', w.execution.cancel.body, ex.cancel],
    ['POST /api/execution/cancel 200', w.execution.cancel.responses[200], ex.cancelOk],
    ['POST /api/execution/cancel 404', w.execution.cancel.responses[404], ex.cancelNotFound],
    ['GET /api/health (worker) 200', w.health.get.responses[200], ex.workerHealth],
  ])('%s', (_name, zodSchema, example) => {
    const result = schema(zodSchema).safeParse(example);
    expect(result.error?.issues ?? []).toEqual([]);
    expect(result.success).toBe(true);
  });

  it('keeps every field of the spec examples (nothing stripped)', () => {
    expect(schema(o.workers.register.body).parse(ex.register)).toEqual(ex.register);
    expect(schema(w.execution.execute.body).parse(ex.execute)).toEqual(ex.execute);
    expect(schema(w.execution.execute.responses[500]).parse(ex.executeFailed)).toEqual(ex.executeFailed);
  });

  it('rejects a register body whose capabilities are invalid, naming the field', () => {
    const bad = structuredClone(ex.register);
    (bad.workerNode.capabilities as { maxParallelModules: unknown }).maxParallelModules = 'four';
    const result = schema(o.workers.register.body).safeParse(bad);
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.path).toEqual(['workerNode', 'capabilities', 'maxParallelModules']);
  });

  it('rejects an endpoint that is not an http(s) URL', () => {
    for (const endpoint of ['ftp://worker1:9000', 'file:///etc/passwd', 'worker1:9000', '']) {
      const bad = structuredClone(ex.register);
      bad.workerNode.endpoint = endpoint;
      expect(schema(o.workers.register.body).safeParse(bad).success, endpoint).toBe(false);
    }
  });

  it('rejects a status outside Available/Busy/Draining/Offline', () => {
    const bad = structuredClone(ex.workers);
    bad[0]!.status = 'Sleeping';
    expect(schema(o.workers.list.responses[200]).safeParse(bad).success).toBe(false);
  });

  it('rejects a timeout that is not a TimeSpan', () => {
    expect(schema(w.execution.execute.body).safeParse({ ...ex.execute, timeout: '1h' }).success).toBe(false);
    expect(schema(w.execution.execute.body).safeParse({ ...ex.execute, timeout: '-00:00:01' }).success).toBe(false);
  });
});
