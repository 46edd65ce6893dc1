/**
 * Every example body of the spec (shared/spec/http-api.md), verbatim, must parse with the
 * contract's schemas: the spec is a promise to users.
 */
import { SPEC_EXAMPLES } from '@mpd/test-kit';
import { describe, expect, it } from 'vitest';
import type { ZodTypeAny } from 'zod';
import { orchestratorContract } from './orchestrator.contract.js';
import { workerContract } from './worker.contract.js';

const ex = SPEC_EXAMPLES;

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
