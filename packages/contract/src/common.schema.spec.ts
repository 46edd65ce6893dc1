import { describe, expect, it } from 'vitest';
import { ERROR_STATUS, errorBodySchema, errorCodeSchema, errorResponse } from './common.schema.js';
import { orchestratorContract } from './orchestrator.contract.js';
import { workerContract } from './worker.contract.js';

describe('ERROR_STATUS and errorResponse', () => {
  it('gives every error code a 4xx or 5xx status', () => {
    expect(Object.keys(ERROR_STATUS).sort()).toEqual([...errorCodeSchema.options].sort());
    for (const status of Object.values(ERROR_STATUS)) {
      expect(status).toBeGreaterThanOrEqual(400);
      expect(status).toBeLessThan(600);
    }
  });

  it("answers the code's status with the contract's error body", () => {
    const issues = [{ field: 'body.workerId', message: 'must not be empty' }];
    expect(errorResponse('ValidationFailed', 'body.workerId: must not be empty', issues)).toEqual({
      status: 400,
      body: { success: false, code: 'ValidationFailed', errorMessage: 'body.workerId: must not be empty', issues },
    });
    const notFound = errorResponse('WorkerNotFound', "Worker 'w1' is not registered");
    expect(notFound).toEqual({
      status: 404,
      body: { success: false, code: 'WorkerNotFound', errorMessage: "Worker 'w1' is not registered" },
    });
    expect(errorBodySchema.parse(notFound.body)).toEqual(notFound.body);
  });

  it('uses only statuses some route of the contracts declares', () => {
    const declared = new Set<number>();
    const walk = (router: object): void => {
      for (const entry of Object.values(router)) {
        if ('method' in entry && 'responses' in entry) {
          for (const status of Object.keys(entry.responses as object)) declared.add(Number(status));
        } else walk(entry);
      }
    };
    walk(orchestratorContract);
    walk(workerContract);
    // 404 RouteNotFound answers paths no route has; every other status is one a route declares.
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      if (code === 'RouteNotFound') continue;
      expect(declared, `${code} → ${status}`).toContain(status);
    }
  });
});
