import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import SwaggerParser from '@apidevtools/swagger-parser';
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
        '/api/artifacts/blobs',
        '/api/artifacts/blobs/{sha256}',
        '/api/artifacts/blobs/{sha256}/transfers',
        '/api/executions/{executionId}/output',
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

/** Each operation's `security`, as `'METHOD /path': [scheme names, one per alternative]`. */
function securityByOperation(doc: { paths: object }): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(item as Record<string, { security?: object[] }>)) {
      out[`${method.toUpperCase()} ${path}`] = (operation.security ?? [undefined]).map((requirement) =>
        requirement === undefined ? 'undeclared' : Object.keys(requirement).join('+'),
      );
    }
  }
  return out;
}

describe('OpenAPI documents are valid and importable', () => {
  // swagger-parser validates against the official OpenAPI 3.0 JSON schema, offline (the documents
  // have only local $refs); it dereferences in place, hence the fresh parse of each file.
  it.each(['orchestrator', 'worker'])(
    'openapi/%s.json passes an OpenAPI 3.0 validator with zero errors',
    async (name) => {
      await expect(
        SwaggerParser.validate(committed(name) as Parameters<typeof SwaggerParser.validate>[0]),
      ).resolves.toBeTruthy();
    },
  );

  it('an exclusive bound is written the OpenAPI 3.0 way (exclusiveMinimum: true beside minimum)', () => {
    const text = JSON.stringify([orchestratorOpenApi(), workerOpenApi()]);
    expect(text).not.toMatch(/"exclusive(Minimum|Maximum)":\s*-?\d/);
    // heartbeatIntervalSeconds is positive: minimum 0, exclusive.
    expect(text).toContain('"minimum":0,"exclusiveMinimum":true');
  });

  it("the orchestrator's routes declare the bearer token each takes (README: Who may call what)", () => {
    const doc = orchestratorOpenApi() as { components: { securitySchemes: object } } & Parameters<
      typeof securityByOperation
    >[0];
    expect(doc.components.securitySchemes).toEqual({
      joinToken: expect.objectContaining({ type: 'http', scheme: 'bearer' }),
      workerCredential: expect.objectContaining({ type: 'http', scheme: 'bearer' }),
      adminToken: expect.objectContaining({ type: 'http', scheme: 'bearer' }),
    });
    expect(securityByOperation(doc)).toEqual({
      'POST /api/workers/register': ['joinToken', 'adminToken'],
      'POST /api/workers/heartbeat': ['workerCredential'],
      'GET /api/workers': ['adminToken'],
      'POST /api/workers/{workerId}/drain': ['workerCredential', 'adminToken'],
      'DELETE /api/workers/{workerId}': ['workerCredential', 'adminToken'],
      'GET /api/health': [],
      'GET /api/artifacts/blobs/{sha256}': ['workerCredential', 'adminToken'],
      'PUT /api/artifacts/blobs/{sha256}': ['workerCredential', 'adminToken'],
      'POST /api/artifacts/blobs': ['workerCredential', 'adminToken'],
      'POST /api/artifacts/blobs/{sha256}/transfers': ['workerCredential', 'adminToken'],
      'POST /api/executions/{executionId}/output': ['workerCredential'],
    });
  });

  it("the worker's execute and cancel take its credential or its --token; health none", () => {
    const doc = workerOpenApi() as { components: { securitySchemes: object } } & Parameters<
      typeof securityByOperation
    >[0];
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['workerCredential', 'workerToken']);
    expect(securityByOperation(doc)).toEqual({
      'POST /api/execution/execute': ['workerCredential', 'workerToken'],
      'POST /api/execution/cancel': ['workerCredential', 'workerToken'],
      'GET /api/health': [],
    });
  });

  it('both documents name a server at the default port', () => {
    expect((orchestratorOpenApi() as { servers?: { url: string }[] }).servers).toEqual([
      expect.objectContaining({ url: 'http://localhost:8080' }),
    ]);
    expect((workerOpenApi() as { servers?: { url: string }[] }).servers).toEqual([
      expect.objectContaining({ url: 'http://localhost:9000' }),
    ]);
  });
});
