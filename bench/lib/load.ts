/** Load generation: registering simulated workers, and autocannon runs. */
import { orchestratorContract } from '@mpd/contract';
import autocannon from 'autocannon';
import { Pool } from 'undici';
import { JOIN_TOKEN } from './processes.js';

export interface SimulatedWorker {
  id: string;
  credential: string;
  /** The incarnation it registered with (a real worker process mints one at its start). */
  incarnation: string;
}

/**
 * Registers `count` simulated workers (ids `PREFIX-00001`…) with the join token, `concurrency`
 * registrations at a time, and returns their credentials. Each registers like a real worker
 * that loaded a 10-module pipeline, with an incarnation of its own.
 */
export async function registerWorkers(
  url: string,
  count: number,
  prefix: string,
  concurrency = 16,
): Promise<{ workers: SimulatedWorker[]; perSecond: number }> {
  const workers: SimulatedWorker[] = new Array(count);
  let next = 0;
  const started = performance.now();
  const register = async (index: number): Promise<void> => {
    const id = `${prefix}-${String(index + 1).padStart(5, '0')}`;
    const incarnation = `${id}-incarnation`;
    const response = await fetch(`${url}${orchestratorContract.workers.register.path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${JOIN_TOKEN}` },
      body: JSON.stringify({
        workerNode: {
          id,
          endpoint: `http://127.0.0.1:${10_000 + (index % 50_000)}`,
          capabilities: { os: 'linux', installedTools: ['node', 'git'], maxParallelModules: 4, tags: ['linux'] },
          pipeline: {
            name: 'simulated',
            fingerprint: 'sha256:0000000000000000000000000000000000000000000000000000000000000000',
            modules: Array.from({ length: 10 }, (_, module) => `module-${module}`),
          },
        },
        incarnation,
      }),
    });
    const body = (await response.json()) as { credential?: string; errorMessage?: string };
    if (response.status !== 200 || !body.credential) {
      throw new Error(`registering ${id} answered ${response.status}: ${body.errorMessage ?? ''}`);
    }
    workers[index] = { id, credential: body.credential, incarnation };
  };
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await register(next++);
    }),
  );
  return { workers, perSecond: count / ((performance.now() - started) / 1000) };
}

/**
 * The heartbeat request of a simulated idle worker, as autocannon sends it: every field a worker
 * sends (`orchestrator-link.ts`: its load, the time, the executions it runs, its incarnation).
 */
export function heartbeatRequest(worker: SimulatedWorker): autocannon.Request {
  return {
    method: 'POST',
    path: orchestratorContract.workers.heartbeat.path,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${worker.credential}` },
    body: JSON.stringify({
      workerId: worker.id,
      currentLoad: 0,
      timestamp: new Date().toISOString(),
      executions: [],
      incarnation: worker.incarnation,
    }),
  };
}

export interface LoadResult {
  /** Completed 2xx responses per second. */
  perSecond: number;
  /** Every response's latency (ms, sub-millisecond precision). */
  latencies: number[];
  ok: number;
  non2xx: number;
  errors: number;
  durationS: number;
}

/** One autocannon run; latencies are collected per response (autocannon's own histogram rounds to whole ms). */
export function runLoad(options: autocannon.Options): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const latencies: number[] = [];
    const instance = autocannon({ ...options }, (error, result) => {
      if (error) {
        reject(error);
        return;
      }
      resolve({
        perSecond: result['2xx'] / result.duration,
        latencies,
        ok: result['2xx'],
        non2xx: result.non2xx,
        errors: result.errors,
        durationS: result.duration,
      });
    });
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
    });
  });
}

/** One request of a paced load. */
export interface PacedRequest {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
}

/**
 * An open-loop load at a steady rate: requests go out evenly spread over time (checked every
 * millisecond), whether or not earlier ones have been answered, as independent workers'
 * heartbeats would. autocannon's `overallRate` is no use for this: each of its connections
 * sends its whole quota for a second back to back when the second starts. Latency is from
 * sending a request to having its whole answer.
 */
export async function pacedLoad(options: {
  url: string;
  rate: number;
  durationS: number;
  connections: number;
  next: () => PacedRequest;
}): Promise<LoadResult & { maxLagMs: number }> {
  const pool = new Pool(options.url, { connections: options.connections, pipelining: 1 });
  const latencies: number[] = [];
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let maxLagMs = 0;
  const total = Math.round(options.rate * options.durationS);
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  const send = (): void => {
    const { method, path, headers, body } = options.next();
    const sentAt = performance.now();
    const call = pool
      .request({ method, path, headers, ...(body === undefined ? {} : { body }) })
      .then(async (response) => {
        await response.body.text();
        if (response.statusCode >= 200 && response.statusCode < 300) {
          ok++;
          latencies.push(performance.now() - sentAt);
        } else non2xx++;
      })
      .catch(() => void errors++)
      .finally(() => inFlight.delete(call));
    inFlight.add(call);
  };
  let sent = 0;
  while (sent < total) {
    const elapsed = performance.now() - started;
    const due = Math.min(total, Math.floor((elapsed / 1000) * options.rate) + 1);
    maxLagMs = Math.max(maxLagMs, elapsed - (sent / options.rate) * 1000);
    while (sent < due) {
      send();
      sent++;
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(inFlight);
  const durationS = (performance.now() - started) / 1000;
  await pool.close();
  return { perSecond: ok / durationS, latencies, ok, non2xx, errors, durationS, maxLagMs };
}
