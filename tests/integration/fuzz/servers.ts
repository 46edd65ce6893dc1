/**
 * The two servers the fuzz test aims at, started in-process on 127.0.0.1 with tokens
 * configured, and the {@link FuzzTarget} the rest of the fuzzer reaches them through.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startOrchestrator } from '@mpd/orchestrator';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { type RunningWorker, startWorker } from '@mpd/worker';
import { silent } from '../helpers/cluster.js';

export const JOIN_TOKEN = 'fuzz-join-token-0123456789abcdef';
export const ADMIN_TOKEN = 'fuzz-admin-token-0123456789abcdef';
export const WORKER_TOKEN = 'fuzz-worker-token-0123456789abcdef';

/** Trivial modules that never throw: a 500 of kind `Error` from execute is a bug. */
const pipeline = definePipeline({
  name: 'fuzz',
  modules: [
    defineModule({ name: 'echo', run: (ctx) => ctx.params ?? null }),
    defineModule({ name: 'noop', run: () => undefined }),
    defineModule({ name: 'env', run: (ctx) => ({ env: Object.keys(ctx.env).length, deps: Object.keys(ctx.results) }) }),
    /** Waits `params.ms` (at most 50) or until cancelled: something for cancel to hit. */
    defineModule({
      name: 'wait',
      run: async (ctx) => {
        const { ms } = (ctx.params ?? {}) as { ms?: unknown };
        await sleep(typeof ms === 'number' ? Math.min(50, Math.max(0, ms)) : 0, undefined, { signal: ctx.signal });
        return ms ?? null;
      },
    }),
  ],
});
export const MODULES = [...pipeline.modules.keys()];

export type Server = 'orchestrator' | 'worker';

/** What the fuzzer aims at, and what the servers handed out while it did. */
export interface FuzzTarget {
  /** Base URL of each server. */
  readonly urls: Readonly<Record<Server, string>>;
  /** The worker's temporary directory: every execute request's working directory is moved into it. */
  readonly workDir: string;
  /** Worker id → the credential the orchestrator issued for it (used as tokens later). */
  readonly credentials: Map<string, string>;
  /** Execution ids sent so far: a repeated one joins the earlier execution. */
  readonly executionIds: Set<string>;
}

/** The worker ids the generated requests mostly name, so that registrations and heartbeats meet. */
export const WORKER_IDS = ['fuzz-w0', 'fuzz-w1', 'fuzz-w2', 'fuzz-w3', 'fuzz-w4'];
export const EXECUTION_IDS = ['fuzz-e0', 'fuzz-e1', 'fuzz-e2', 'fuzz-e3', 'fuzz-e4', 'fuzz-e5'];

export interface FuzzServers {
  readonly target: FuzzTarget;
  readonly worker: RunningWorker;
  close(): Promise<void>;
}

/** Starts both servers on free ports (the orchestrator's rate limits out of the way). */
export async function startFuzzServers(): Promise<FuzzServers> {
  const orchestrator = await startOrchestrator({
    port: 0,
    host: '127.0.0.1',
    joinToken: JOIN_TOKEN,
    adminToken: ADMIN_TOKEN,
    logger: silent,
    rateLimits: {
      authFailuresPerMinute: 1_000_000,
      failedRequestsPerMinute: 1_000_000,
      registerPerMinute: 1_000_000,
      heartbeatPerMinute: 1_000_000,
    },
  });
  const workDir = mkdtempSync(join(tmpdir(), 'mpd-fuzz-'));
  const closeOrchestrator = async () => {
    await orchestrator.close();
    rmSync(workDir, { recursive: true, force: true });
  };
  let worker: RunningWorker;
  try {
    worker = await startWorker({
      port: 0,
      host: '127.0.0.1',
      pipeline,
      token: WORKER_TOKEN,
      logger: silent,
      slots: 2,
      workingDirectory: workDir,
      shutdownGraceMs: 200,
      tools: ['node'],
    });
  } catch (error) {
    await closeOrchestrator();
    throw error;
  }
  return {
    target: {
      urls: { orchestrator: orchestrator.url, worker: worker.url },
      workDir,
      credentials: new Map(),
      executionIds: new Set(),
    },
    worker,
    close: async () => {
      await worker.close(200);
      await closeOrchestrator();
    },
  };
}
