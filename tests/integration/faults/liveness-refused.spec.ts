/**
 * Issue 10, case 7 (the worker's half): a worker whose registration the orchestrator refuses as
 * invalid (400) used to retry forever. It now exits 2 with the orchestrator's message, at its
 * first answer. (409 WorkerIdTaken still retries: in-process/security.spec.ts.)
 */
import { killLeftovers } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { LIVENESS_PIPELINE, startCli } from './liveness-helpers.js';

afterEach(killLeftovers);

/** Starts a registry-only orchestrator with `extra` flags, and a worker registering with it with `workerExtra`. */
async function refusedWorker(extra: string[], workerExtra: string[]) {
  const orchestrator = startCli('orchestrator', ['--port', '0', '--host', '127.0.0.1', ...extra]);
  const url = await orchestrator.listeningUrl();
  const worker = startCli('worker', [
    ...['--port', '0', '--host', '127.0.0.1', '--orchestrator', url, '--id', 'liveness-7'],
    ...['--pipeline', LIVENESS_PIPELINE, ...workerExtra],
  ]);
  const started = Date.now();
  const code = await worker.exited;
  await orchestrator.stop('SIGTERM');
  return { code, ms: Date.now() - started, stderr: worker.stderr() };
}

describe('a worker whose registration is refused as invalid (case 7)', () => {
  it('exits 2 with the orchestrator’s message when its endpoint is not on the allow-list (400 EndpointNotAllowed)', async () => {
    const { code, ms, stderr } = await refusedWorker(['--allowed-worker-hosts', '*.ci.internal'], []);
    expect(code).toBe(2);
    expect(stderr).toMatch(
      /mpd-worker: the orchestrator refused the registration as invalid: EndpointNotAllowed: body\.workerNode\.endpoint: /,
    );
    expect(stderr).not.toMatch(/registration failed; retrying/);
    expect(ms).toBeLessThan(15_000);
  });

  it('exits 2 naming the field when the registration breaks the schema (an endpoint over 2048 characters)', async () => {
    const endpoint = `http://127.0.0.1:9/${'x'.repeat(2100)}`;
    const { code, stderr } = await refusedWorker([], ['--endpoint', endpoint]);
    // The orchestrator's 400 ValidationFailed, or the worker's own check of --endpoint, should it get one.
    expect(code).toBe(2);
    expect(stderr).toMatch(/mpd-worker: .*endpoint/);
    expect(stderr).not.toMatch(/registration failed; retrying/);
  });
});
