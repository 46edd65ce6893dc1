/**
 * A module host's lease watchdog. The worker holds a lease from the orchestrator (its heartbeat
 * lease: past it, the orchestrator may run the worker's modules elsewhere) and passes it on to
 * every host, renewing it while it holds its own. A host **holds** the lease while it runs a
 * module (and once the worker stops its group after one); a host that holds its lease when it
 * ends — the worker frozen (SIGSTOP, a paused VM), its event loop stalled, or cut off so long
 * that it could not renew — kills its whole process group at once, itself included (SIGKILL: the
 * lease is over, there is no grace left to give), so that nothing of the module runs once the
 * orchestrator may start it again elsewhere. An idle host holds none: it outlives the lease.
 *
 * The watchdog runs on a thread of its own, with its own event loop, reading the lease channel
 * (`LEASE_FD`) directly: a module that blocks the host's main thread (`execSync('sleep 600')`)
 * neither keeps its lease from ending nor makes it end early (renewals do not wait for the main
 * thread). Plain JavaScript evaluated in a worker thread without the host's loaders: it starts in
 * a few milliseconds and holds no module code. Whether the host holds the lease, the main thread
 * tells it through shared memory ({@link LeaseWatchdog}): taking a module and going idle again
 * cost no write on the lease channel and no wake-up of this thread (a pipe write and a thread
 * wake-up each way per module cost 0.02–0.04 ms, about a third of a no-op module's CPU in its
 * host, measured with `bench/host-loop.ts --lease`).
 */
import { writeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { LEASE_FD } from './host-protocol.js';
import { monotonicNow } from './process-group.js';

/** What a host writes to its stderr when its lease ended (the worker names the cause from it). */
const LEASE_ENDED = 'its lease ended (the worker did not renew it in time): SIGKILL to its process group';

const WATCHDOG = `
const { workerData } = require('node:worker_threads');
const { Socket } = require('node:net');
const { writeSync } = require('node:fs');
const MAX_TIMER_MS = 2 ** 31 - 1;
const now = () => Number(process.hrtime.bigint() / 1000n) / 1000;
/** Non-zero while the main thread runs a module (see LeaseWatchdog in module-host-lease.ts). */
const running = new Int32Array(workerData.running);
/** The lease's end as last read on the channel, for the main thread (µs; 0: none read yet; -1: no lease). */
const latest = new BigInt64Array(workerData.latest);
/** Set by the worker's hold line: the host is being stopped after it held the lease. */
let heldByWorker = false;
let endsAt = Infinity;
let timer;
function check() {
  clearTimeout(timer);
  timer = undefined;
  if (endsAt === Infinity) return;
  const left = endsAt - now();
  if (left > 0) {
    timer = setTimeout(check, Math.min(Math.ceil(left), MAX_TIMER_MS));
    return;
  }
  // Idle: the host holds no lease. It takes its next module with the lease as the worker sends
  // it then, and checks that one itself.
  if (!heldByWorker && Atomics.load(running, 0) === 0) return;
  try {
    writeSync(2, 'module host ' + process.pid + ': ' + ${JSON.stringify(LEASE_ENDED)} + '\\n');
  } catch {}
  process.kill(-process.pid, 'SIGKILL');
}
let partial = '';
const channel = new Socket({ fd: workerData.fd, readable: true, writable: false });
channel.setEncoding('utf8');
channel.on('data', (chunk) => {
  partial += chunk;
  let newline;
  while ((newline = partial.indexOf('\\n')) >= 0) {
    const line = partial.slice(0, newline);
    partial = partial.slice(newline + 1);
    if (line === 'hold') {
      heldByWorker = true;
    } else {
      const value = line === '-' ? Infinity : Number(line);
      if (Number.isNaN(value)) continue;
      endsAt = value;
      Atomics.store(latest, 0, value === Infinity ? -1n : BigInt(Math.max(1, Math.round(value * 1000))));
    }
    check();
  }
});
// The worker gone (end of the channel) changes nothing: the lease it gave still ends when it said.
channel.on('error', () => undefined);
`;

/** The host's main thread's side of its lease watchdog. */
export interface LeaseWatchdog {
  /**
   * The host takes a module, given with the worker's lease ending at `endsAt` (ms on
   * `monotonicNow()`'s clock; null: none): it holds the lease from now on. One that has already
   * ended kills the group at once, as the watchdog would: the later of `endsAt` and the last
   * renewal the watchdog read ({@link LeaseWatchdog.renewedUntil}). A module's message is read
   * after it travelled the host channel (a large one, seconds under load, while the worker went
   * on renewing): its `endsAt` alone may have passed while the lease the worker holds has not.
   */
  hold(endsAt: number | null): void;
  /**
   * The lease's end as the watchdog last read it on the lease channel (ms on `monotonicNow()`'s
   * clock, to the µs): undefined before it read any, `Infinity` when the worker said it has none.
   */
  renewedUntil(): number | undefined;
  /** The host is idle again, its module ended cleanly: it holds no lease. */
  release(): void;
}

/**
 * Starts the watchdog thread of this host (once, at the host's start). It does not keep the host
 * alive. Where the lease channel is missing (the host started by hand), it reads nothing and
 * never fires.
 */
export function startLeaseWatchdog(): LeaseWatchdog {
  const running = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  const latest = new BigInt64Array(new SharedArrayBuffer(BigInt64Array.BYTES_PER_ELEMENT));
  const renewedUntil = (): number | undefined => {
    const micros = Atomics.load(latest, 0);
    return micros === 0n ? undefined : micros === -1n ? Infinity : Number(micros) / 1000;
  };
  const watchdog = new Worker(WATCHDOG, {
    eval: true,
    workerData: { fd: LEASE_FD, running: running.buffer, latest: latest.buffer },
    execArgv: [],
  });
  watchdog.on('error', (error) => process.stderr.write(`module host: the lease watchdog failed: ${String(error)}\n`));
  watchdog.unref();
  return {
    hold: (endsAt) => {
      // Held first: the watchdog, firing meanwhile, sees it; so no moment is left unwatched.
      Atomics.store(running, 0, 1);
      const renewed = renewedUntil();
      if (endsAt !== null && Math.max(endsAt, renewed ?? endsAt) <= monotonicNow()) {
        try {
          writeSync(2, `module host ${process.pid}: ${LEASE_ENDED}\n`);
        } catch {
          // stderr is gone: the kill still happens
        }
        process.kill(-process.pid, 'SIGKILL');
      }
    },
    release: () => Atomics.store(running, 0, 0),
    renewedUntil,
  };
}
