/**
 * compose.yaml without a container engine (issue 12, "Deployment files"): each service runs in
 * a Linux network namespace of its own, on a private network of namespaces where the service
 * names resolve (as on compose's network), with exactly the `command` compose gives it after the
 * image's ENTRYPOINT (`mpd`), the image's and the service's environment (tokens from this test),
 * and the image's WORKDIR: the repository's layout. Services start in compose's order, each once
 * what it depends on is healthy by its own `healthcheck` run inside its namespace. The demo must
 * succeed over the namespaces' interfaces (a namespace's loopback reaches no other); then SIGTERM
 * to each service's process, as `docker compose stop` sends it, leaves no process in any of them.
 *
 * Needs root and `ip` (.ci/run runs as root); skipped with the reason otherwise. What it does not
 * run: the image build, tini and the non-root user (see the README's "Deploy").
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createNamespaceNetwork,
  killLeftovers,
  type NamespaceNetwork,
  networkNamespacesUnavailable,
  type RunningProcess,
} from '@mpd/test-kit';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type ComposeService,
  dependenciesOf,
  environmentOf,
  mpdProcess,
  readCompose,
  readImage,
  REPO_ROOT,
  startOrder,
} from './deploy-files.js';

const unavailable = networkNamespacesUnavailable(['ip']);
if (unavailable) console.warn(`compose-netns.spec.ts skipped: ${unavailable}`);

let network: NamespaceNetwork | undefined;
let workdir: string | undefined;
afterAll(async () => {
  killLeftovers();
  await network?.destroy();
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

/**
 * The image's WORKDIR here: a fresh directory whose entries are links to the repository's, so
 * that relative paths mean what they mean in the image (and in the repository) while what the
 * modules write (the demo's `.mpd/artifacts`) stays in this run's directory, apart from the
 * repository and from another run beside it.
 */
function imageWorkdir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mpd-compose-'));
  for (const entry of readdirSync(REPO_ROOT)) {
    if (entry !== '.git' && entry !== '.mpd') symlinkSync(join(REPO_ROOT, entry), join(dir, entry));
  }
  return dir;
}

/** Rejects with `message` and the output so far if `promise` takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe.skipIf(unavailable !== undefined)(
  `compose.yaml's services, each in a network namespace${unavailable ? ` (skipped: ${unavailable})` : ''}`,
  () => {
    it("run the demo over the namespaces' network with exactly compose's commands and environments; SIGTERM leaves no process", async () => {
      const compose = readCompose();
      const image = readImage();
      const names = Object.keys(compose.services);
      network = await createNamespaceNetwork(names);
      workdir = imageWorkdir();
      // The variables compose.yaml takes from the shell that runs `docker compose up`.
      const variables = {
        MPD_JOIN_TOKEN: `mpdj_${randomBytes(24).toString('base64url')}`,
        MPD_ADMIN_TOKEN: `mpda_${randomBytes(24).toString('base64url')}`,
        BUILD_NUMBER: `netns-${randomBytes(3).toString('hex')}`,
      };
      // What a container of the service gets: the image's ENV, then the service's environment.
      const environment = (service: ComposeService) => ({ ...image.env, ...environmentOf(service, variables) });
      const processes = new Map<string, RunningProcess>();
      const everything = () => [...processes].map(([name, running]) => `--- ${name}:\n${running.output()}`).join('\n');

      /** compose's `service_healthy`: the service's healthcheck, run inside its namespace, exits 0. */
      const healthcheck = (name: string) => {
        const service = compose.services[name]!;
        const test = service.healthcheck!.test;
        expect(Array.isArray(test) && test[0] === 'CMD', `${name}: healthcheck.test is ["CMD", …]`).toBe(true);
        return network!.host(name).exec((test as string[]).slice(1), {
          cwd: workdir,
          cleanEnv: true,
          env: environment(service),
          timeoutMs: 10_000,
        });
      };
      const waitHealthy = async (name: string) => {
        const deadline = Date.now() + 30_000;
        for (;;) {
          const running = processes.get(name)!;
          if (running.child.exitCode !== null || running.child.signalCode !== null) {
            throw new Error(`${name} exited before it was healthy:\n${everything()}`);
          }
          const check = await healthcheck(name);
          if (check.code === 0) return;
          if (Date.now() > deadline) throw new Error(`${name} not healthy in 30 s: ${check.output}\n${everything()}`);
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      };

      for (const name of startOrder(compose)) {
        const service = compose.services[name]!;
        for (const [dependency, condition] of dependenciesOf(service)) {
          if (condition === 'service_healthy') await waitHealthy(dependency);
          else expect(condition, `${name} depends on ${dependency}`).toBe('service_started');
        }
        processes.set(
          name,
          network.host(name).spawn({
            ...mpdProcess(service.command),
            cwd: workdir,
            cleanEnv: true,
            env: environment(service),
          }),
        );
      }

      const orchestrator = processes.get('orchestrator')!;
      // The run ends with the orchestrator's exit; a worker that exits first (refused, crashed)
      // fails the test at once rather than after the orchestrator's wait for workers.
      const workerExits = [...processes]
        .filter(([name]) => name !== 'orchestrator')
        .map(([name, running]) =>
          running.exited.then((exit) =>
            Promise.reject(new Error(`${name} exited ${exit} during the run:\n${everything()}`)),
          ),
        );
      const code = await within(
        Promise.race([orchestrator.exited, ...workerExits]),
        90_000,
        () => `the run did not end in 90 s:\n${everything()}`,
      );
      for (const exit of workerExits) exit.catch(() => undefined); // they exit when stopped, below
      const output = orchestrator.stdout();
      expect(code, everything()).toBe(0);
      // It listened on every interface, and named its address on the network for other machines.
      const { address } = network.host('orchestrator');
      expect(output).toContain(`listening on http://0.0.0.0:8080 (from other machines: http://${address}:8080)`);
      expect(output).toMatch(/Pipeline 'demo' Successful/);
      // The summary: every module Successful, on both workers, package and cleanup on the fast-disk one.
      const rows = new Map(
        [...output.matchAll(/^([a-z-]+) +(\w+) +(worker-\d) +\d+ /gm)].map(([, module, status, worker]) => [
          module!,
          { status, worker },
        ]),
      );
      expect([...rows.keys()].sort()).toEqual([
        'audit',
        'build',
        'cleanup',
        'lint',
        'package',
        'restore',
        'test-integration',
        'test-unit',
      ]);
      expect(
        [...rows.values()].every((row) => row.status === 'Successful'),
        output,
      ).toBe(true);
      expect(new Set([...rows.values()].map((row) => row.worker))).toEqual(new Set(['worker-1', 'worker-2']));
      expect(rows.get('package')!.worker).toBe('worker-1');
      expect(rows.get('cleanup')!.worker).toBe('worker-1');

      // The workers are still up (compose's `--exit-code-from` stops them next), each advertising
      // its service name, and healthy by their own healthcheck.
      for (const name of ['worker-1', 'worker-2']) {
        expect(processes.get(name)!.stdout()).toContain(
          `mpd worker ${name} listening on http://0.0.0.0:8080 (the orchestrator calls it at http://${name}:8080)`,
        );
        expect((await healthcheck(name)).code, `${name}'s healthcheck`).toBe(0);
      }

      // `docker compose stop`: SIGTERM to each service's process (tini passes it on to mpd), then
      // SIGKILL after stop_grace_period; here a worker drains and exits 0 well before.
      const stopped = await Promise.all(
        [...processes].map(async ([name, running]) => [name, (await running.stop('SIGTERM', 30_000)).code] as const),
      );
      expect(Object.fromEntries(stopped), everything()).toEqual(Object.fromEntries(names.map((name) => [name, 0])));
      // Nothing is left in any namespace: no worker, module host or process a module started.
      for (const host of network.hosts) {
        await expect
          .poll(() => host.pids(), {
            timeout: 5_000,
            interval: 100,
            message: `no process left in ${host.hostname}'s namespace`,
          })
          .toEqual([]);
      }
    }, 150_000);
  },
);
