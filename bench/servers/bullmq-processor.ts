/**
 * The no-op processor of the BullMQ peer's sandboxed workers (issue 14, round F): BullMQ runs
 * this file in child processes of the worker (`useWorkerThreads: false`), its own isolation and
 * the peer closest to mpd's module hosts. It answers when it started and ended, µs on the
 * monotonic clock every process on the machine shares, so the worker can note the job's span.
 * A default export of a function is what BullMQ's child loads (`child-processor.js`).
 */
import type { SandboxedJob } from 'bullmq';

const nowUs = (): number => Number(process.hrtime.bigint() / 1_000n);

export default async function noop(_job: SandboxedJob): Promise<[start: number, end: number]> {
  const start = nowUs();
  return [start, nowUs()];
}
