/**
 * An execute call that reaches its worker's id only after the run abandoned its attempt, the
 * worker acknowledged the attempt's cancel with 404, and the worker restarted (round N, N3, 3):
 * the cancel's tombstone was in the old process's memory only, so the new process must refuse
 * the call (401: it carries the old process's credential), never run it. With a credential file
 * the new process presents the old credential; it gets a new one all the same. Real
 * orchestrator and workers on 127.0.0.1; test-kit's FaultProxy holds the execute call on its way.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../helpers/cluster.js';
import { abandonWithHeldExecute } from '../helpers/held-execute.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('a held execute call that arrives after its cancel was answered 404 and the worker restarted (N3, 3)', () => {
  it.each([
    ['without a credential file', false],
    ['with a credential file (the new process presents the old credential)', true],
  ])(
    '%s: the new process refuses it 401 and runs nothing; the module runs once, elsewhere',
    async (_name, withFile) => {
      const cluster = new Cluster();
      cleanups.push(() => cluster.close());
      const dir = mkdtempSync(join(tmpdir(), 'mpd-n3-restart-'));
      cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
      const credentialFile = withFile ? join(dir, 'credential') : undefined;
      const { pipeline, proxy, one, starts, release, running, lines, executionId } = await abandonWithHeldExecute(
        cluster,
        cleanups,
        { name: 'held-restart', credentialFile },
      );
      // It stops (its unregister held, given up after 5 s) and a new process takes the id.
      await one.close();
      const restarted = await cluster.startWorker({ id: 'w-one', pipeline, endpoint: proxy.url, credentialFile });
      proxy.setTarget({ port: Number(new URL(restarted.url).port) });
      await restarted.link!.registered();
      // The held execute arrives, at the new process.
      proxy.heal();
      await expect
        .poll(
          () => starts.length > 1 || lines.some((line) => line.msg === 'late answer of an abandoned attempt ignored'),
          { timeout: 20_000 },
        )
        .toBe(true);
      release.open();
      const result = await running;

      // The old code kept the credential for the new process, which took the call and ran the module beside w-two.
      expect(starts).toEqual(['w-two']);
      expect(result.status).toBe('Successful');
      const [first, second] = result.modules[0]!.attempts;
      expect(first).toMatchObject({ executionId, workerId: 'w-one', outcome: 'Lost' });
      expect(second).toMatchObject({ workerId: 'w-two', outcome: 'Succeeded' });
    },
  );
});
