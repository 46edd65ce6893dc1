/**
 * A module host's lease watchdog. The worker holds a lease from the orchestrator (its heartbeat
 * lease: past it, the orchestrator may run the worker's modules elsewhere) and passes it on to
 * each host running a module, renewing it while it holds its own. A host whose lease ends — the
 * worker frozen (SIGSTOP, a paused VM), its event loop stalled, or cut off so long that it could
 * not renew — kills its whole process group at once, itself included (SIGKILL: the lease is
 * over, there is no grace left to give), so that nothing of the module runs once the
 * orchestrator may start it again elsewhere.
 *
 * The watchdog runs on a thread of its own, with its own event loop, reading the lease channel
 * (`LEASE_FD`) directly: a module that blocks the host's main thread (`execSync('sleep 600')`)
 * neither keeps its lease from ending nor makes it end early (renewals do not wait for the main
 * thread). Plain JavaScript evaluated in a worker thread without the host's loaders: it starts in
 * a few milliseconds and holds no module code.
 */
import { Worker } from 'node:worker_threads';
import { LEASE_FD } from './host-protocol.js';

const WATCHDOG = `
const { workerData } = require('node:worker_threads');
const { Socket } = require('node:net');
const { writeSync } = require('node:fs');
const MAX_TIMER_MS = 2 ** 31 - 1;
const now = () => Number(process.hrtime.bigint() / 1000n) / 1000;
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
  try {
    writeSync(2, 'module host ' + process.pid + ': its lease ended (the worker did not renew it in time): SIGKILL to its process group\\n');
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
    const value = line === '-' ? Infinity : Number(line);
    if (Number.isNaN(value)) continue;
    endsAt = value;
    check();
  }
});
// The worker gone (end of the channel) changes nothing: the lease it gave still ends when it said.
channel.on('error', () => undefined);
`;

/**
 * Starts the watchdog thread of this host (once, at the host's start). It does not keep the host
 * alive. Where the lease channel is missing (the host started by hand), it reads nothing and
 * never fires.
 */
export function startLeaseWatchdog(): void {
  const watchdog = new Worker(WATCHDOG, { eval: true, workerData: { fd: LEASE_FD }, execArgv: [] });
  watchdog.on('error', (error) => process.stderr.write(`module host: the lease watchdog failed: ${String(error)}\n`));
  watchdog.unref();
}
