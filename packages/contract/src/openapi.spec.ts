import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { orchestratorOpenApi, workerOpenApi } from './openapi.js';

const committed = (name: string): unknown =>
  JSON.parse(readFileSync(fileURLToPath(new URL(`../../../openapi/${name}.json`, import.meta.url)), 'utf8'));

describe('OpenAPI documents', () => {
  it('list every route of the spec', () => {
    const orchestrator = orchestratorOpenApi();
    const worker = workerOpenApi();
    expect(Object.keys(orchestrator.paths).sort()).toEqual(
      [
        '/api/health',
        '/api/workers',
        '/api/workers/register',
        '/api/workers/heartbeat',
        '/api/workers/{workerId}',
        '/api/workers/{workerId}/drain',
      ].sort(),
    );
    expect(Object.keys(worker.paths).sort()).toEqual([
      '/api/execution/cancel',
      '/api/execution/execute',
      '/api/health',
    ]);
    expect(Object.keys(worker.paths['/api/execution/execute']!.post!.responses).sort()).toEqual([
      '200',
      '400',
      '401',
      '404',
      '409',
      '413',
      '415',
      '429',
      '500',
      '503',
    ]);
  });

  it('committed files under openapi/ are up to date (run `pnpm openapi` to refresh)', () => {
    expect(committed('orchestrator')).toEqual(JSON.parse(JSON.stringify(orchestratorOpenApi())));
    expect(committed('worker')).toEqual(JSON.parse(JSON.stringify(workerOpenApi())));
  });
});
