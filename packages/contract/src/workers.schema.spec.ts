/**
 * A worker endpoint is `scheme://host:port` only (issue 11, case 5): a registrant chooses a host
 * and a port, never the path, query or credentials of the URLs the orchestrator calls.
 */
import { SPEC_EXAMPLES } from '@mpd/test-kit';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { boundedArray } from './common.schema.js';
import { LIMITS } from './limits.js';
import {
  endpointOrigin,
  heartbeatRequestSchema,
  registerWorkerRequestSchema,
  WORKER_ENDPOINT_RULE,
  workerEndpointSchema,
} from './workers.schema.js';

describe('worker endpoint: scheme://host:port only', () => {
  it.each([
    [SPEC_EXAMPLES.register.workerNode.endpoint, 'http://worker1:9000'],
    ['http://worker1:9000/', 'http://worker1:9000'],
    ['https://w.example.com', 'https://w.example.com'],
    ['HTTPS://W.EXAMPLE.COM:443', 'https://w.example.com'],
    ['http://127.0.0.1:9', 'http://127.0.0.1:9'],
    ['http://[::1]:9000/', 'http://[::1]:9000'],
  ])('accepts %s (origin %s)', (endpoint, origin) => {
    expect(workerEndpointSchema.safeParse(endpoint).success).toBe(true);
    expect(endpointOrigin(endpoint)).toBe(origin);
  });

  it.each([
    // The issue's: a path (the metadata service's), a query that makes the rest of the URL its value, userinfo.
    ['a path', 'http://169.254.169.254/latest/meta-data/'],
    ['a query', 'http://w:9000/?x='],
    ['an empty query', 'http://w:9000?'],
    ['a fragment', 'http://w:9000/#f'],
    ['an empty fragment', 'http://w:9000#'],
    ['userinfo', 'http://user:secret@w:9000'],
    ['an empty userinfo', 'http://@w:9000'],
    ['a dot segment (the parser resolves it to /)', 'http://w:9000/.'],
    ['a percent-encoded dot segment', 'http://w:9000/%2e'],
    ['backslashes (the parser reads them as /)', 'http:\\\\w:9000\\x'],
    ['a trailing backslash', 'http://w:9000\\'],
    ['leading whitespace (the parser trims it)', ' http://w:9000'],
    ['a tab inside (the parser drops it)', 'http://w\t:9000'],
    ['another scheme', 'ftp://w:21'],
    ['a file URL', 'file:///etc/passwd'],
    ['no URL at all', 'http//missing-colon'],
    ['a port out of range', 'http://w:70000'],
  ])('refuses %s: %s, with one issue naming the rule', (_kind, endpoint) => {
    const result = workerEndpointSchema.safeParse(endpoint);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((issue) => issue.message)).toEqual([WORKER_ENDPOINT_RULE]);
    expect(endpointOrigin(endpoint)).toBeUndefined();
  });
});

describe('arrays are counted before their items are validated (issue 11, case 1)', () => {
  it('boundedArray validates at most max + 1 items of a longer array, and says it is too long', () => {
    let validated = 0;
    const item = z.string().refine(() => ++validated > 0);
    const schema = boundedArray(item, 256);
    const result = schema.safeParse(Array.from({ length: 250_000 }, () => ''));
    expect(result.success).toBe(false);
    expect(result.error!.issues.map((issue) => issue.message)).toEqual(['Array must contain at most 256 element(s)']);
    expect(validated).toBeLessThanOrEqual(257);
    expect(boundedArray(z.string(), 2).parse(['a', 'b'])).toEqual(['a', 'b']);
  });

  it("a registration with 250,000 tags gets the tags' bound as its issue", () => {
    const tags = Array.from({ length: 250_000 }, () => '');
    const body = {
      workerNode: {
        id: 'w1',
        endpoint: 'http://worker1:9000',
        capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags },
      },
    };
    const result = registerWorkerRequestSchema.safeParse(body);
    expect(result.success).toBe(false);
    // The bound, and the items up to it that are not names (empty): never one issue per item sent.
    expect(result.error!.issues.length).toBeLessThanOrEqual(258);
    expect(result.error!.issues).toContainEqual(
      expect.objectContaining({ path: ['workerNode', 'capabilities', 'tags'], code: 'too_big' }),
    );
  });
});

describe('the largest heartbeat the contract admits', () => {
  // README `--body-limit` (orchestrator): a limit under this figure refuses (413) the heartbeats
  // of a worker running 1,024 modules with long execution ids, and the worker then fences.
  it('is about 530 KB with ids of plain characters (over 512 KiB, within the default 1 MiB); escaped ids (`"`, `\\`) could double it', () => {
    const ids = (prefix: string) =>
      Array.from({ length: LIMITS.capabilities.maxSlots }, (_, i) =>
        `${prefix}${i}`.padEnd(LIMITS.identifier.maxLength, 'x'),
      );
    const body = {
      workerId: 'w'.repeat(LIMITS.workerId.maxLength),
      currentLoad: LIMITS.capabilities.maxSlots,
      timestamp: '2025-09-30T10:00:30.000Z',
      executions: ids('e'),
      finished: ids('f'),
      incarnation: 'i'.repeat(LIMITS.identifier.maxLength),
    };
    expect(heartbeatRequestSchema.safeParse(body).success).toBe(true);
    const bytes = Buffer.byteLength(JSON.stringify(body));
    expect(bytes).toBeGreaterThan(512 * 1024);
    expect(bytes).toBeLessThan(1024 * 1024);
    expect(Math.round(bytes / 1000)).toBe(531);
  });
});
