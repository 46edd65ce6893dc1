/**
 * `pnpm demo`: one orchestrator and two workers as separate processes on free ports,
 * running the demo pipeline (demo.pipeline.ts). Also runs apps/cluster-status, another
 * service that uses only `@mpd/client`, to list the workers and check the orchestrator's health.
 *
 * Flags: --report FILE (write the JSON run report), --verbose (show the servers' logs).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createOrchestratorClient } from '@mpd/client';

const { values: flags } = parseArgs({
  options: { report: { type: 'string' }, verbose: { type: 'boolean', default: false } },
});

const pipelineFile = fileURLToPath(new URL('./demo.pipeline.ts', import.meta.url));

/**
 * The `mpd` command: the `mpd` entry of the `bin` field of `@mpd/cli`'s package.json, found
 * through the demo's dependency on it (the same lookup as @mpd/test-kit's cliOf, which the demo
 * does not depend on).
 */
function mpdCommand(): string {
  const packageJson = fileURLToPath(import.meta.resolve('@mpd/cli/package.json'));
  const { bin } = JSON.parse(readFileSync(packageJson, 'utf8')) as { bin: Record<string, string> };
  return resolve(dirname(packageJson), bin.mpd!);
}

const statusService = fileURLToPath(new URL('../../cluster-status/src/main.ts', import.meta.url));
const children: ChildProcess[] = [];

// Secured by default: fresh tokens for this run, handed to the processes in their environment
// (not on their command lines, where `ps` would show them).
const joinToken = `mpdj_${randomBytes(24).toString('base64url')}`;
const adminToken = `mpda_${randomBytes(24).toString('base64url')}`;
const secrets = { MPD_JOIN_TOKEN: joinToken, MPD_ADMIN_TOKEN: adminToken };

/** Starts `mpd <command>` under tsx and resolves with the URL it prints. */
function start(
  name: string,
  command: 'orchestrator' | 'worker',
  args: string[],
  env: Record<string, string>,
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', mpdCommand(), command, ...args], {
    stdio: ['ignore', 'pipe', flags.verbose ? 'inherit' : 'ignore'],
    env: { ...process.env, MPD_LOG_LEVEL: flags.verbose ? 'info' : 'warn', ...env },
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let url: string | undefined;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!url) {
        const match = /listening on (http\S+)/.exec(line);
        if (match) {
          url = match[1]!;
          console.log(`[demo] ${name} listening on ${url}`);
          resolve({ child, url });
          return;
        }
      }
      console.log(line);
    });
    child.once('exit', (code) => {
      if (!url) reject(new Error(`${name} exited with code ${code} before listening`));
    });
  });
}

async function stopAll(): Promise<void> {
  await Promise.all(
    children
      .filter((child) => child.exitCode === null && child.signalCode === null)
      .map(async (child) => {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await once(child, 'exit');
        clearTimeout(timer);
      }),
  );
}

async function main(): Promise<number> {
  const orchestratorArgs = [
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--pipeline',
    pipelineFile,
    '--min-workers',
    '2',
    '--heartbeat-interval',
    '2',
    // Every module gets these in ctx.env.
    '--env',
    `BUILD_NUMBER=${process.env.BUILD_NUMBER ?? 'local'}`,
    '--env',
    'DEMO_REQUESTED_BY=pnpm demo',
    // Each module's own lines (its logger, the tools it runs) together, under a header, once it ended.
    '--output',
    'grouped',
  ];
  if (flags.report) orchestratorArgs.push('--report', flags.report);
  console.log(`[demo] tokens for this run (printed once): join ${joinToken}, admin ${adminToken}`);
  const orchestrator = await start('orchestrator', 'orchestrator', orchestratorArgs, secrets);
  const orchestratorExit = once(orchestrator.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;

  const startWorker = (n: number) =>
    start(
      `worker ${n}`,
      'worker',
      [
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--id',
        `demo-worker-${n}`,
        '--orchestrator',
        orchestrator.url,
        '--pipeline',
        pipelineFile,
        '--slots',
        '2',
        '--tags',
        n === 1 ? 'linux,fast-disk' : 'linux',
        // Both workers run in this directory: each keeps its artifact cache apart (a cache is one worker's).
        '--cache-dir',
        `.mpd/demo-worker-${n}/artifact-cache`,
      ],
      { MPD_JOIN_TOKEN: joinToken },
    );

  // The orchestrator waits for two workers (--min-workers 2). While only the first one is
  // registered, another service that depends only on @mpd/client (apps/cluster-status)
  // checks the orchestrator's health and lists its workers.
  await startWorker(1);
  const client = createOrchestratorClient({
    baseUrl: orchestrator.url,
    token: adminToken,
  });
  try {
    for (let tries = 0; ; tries++) {
      const workers = await client.workers.list();
      if (workers.status === 200 && workers.body.some((worker) => worker.id === 'demo-worker-1')) break;
      if (tries > 200) throw new Error('demo-worker-1 did not register within 20 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await client.close();
  }
  const status = spawn(process.execPath, ['--import', 'tsx', statusService, orchestrator.url], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, MPD_ADMIN_TOKEN: adminToken },
  });
  await once(status, 'exit');

  // The second worker makes two: the orchestrator starts the run.
  await startWorker(2);

  const [code, signal] = await orchestratorExit;
  console.log(`[demo] orchestrator exited with ${signal ?? `code ${code}`}; stopping the workers`);
  await stopAll();
  return code ?? 1;
}

// Never leave servers behind: if this process dies, so do they.
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});
process.stdout.on('error', () => undefined); // e.g. `pnpm demo | head`

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    void stopAll().then(() => process.exit(130));
  });
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    console.error(`[demo] ${(error as Error).message}`);
    await stopAll();
    process.exit(1);
  },
);
