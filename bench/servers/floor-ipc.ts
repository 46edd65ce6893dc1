/**
 * The floor benchmark's IPC round trip (issue 14, bench/floor.ts): the worker ↔ host channel
 * alone (since round J a pipe of their own, one line of JSON per message: `host-channel.ts`;
 * node's `child_process` channel before), as a worker talks to its module hosts. `parent HOSTS`
 * starts HOSTS children of this file (`child`) with that channel on their fd 3, as the worker
 * starts its hosts; on the driver's `run`
 * request it sends each child a message the size and shape of the worker's `execute` and the
 * child answers at once with one the size and shape of a no-op module's `done`, one at a time
 * per child, for `durationS`; it answers the round trips made and the CPU time of itself and
 * its children meanwhile (each child says its own, µs). Nothing else of a module host: no
 * module, no pipes, no lease, no `setImmediate` after the module.
 * `parent HOSTS bare` (round X): the same exchange, the same JSON, with none of mpd's channel
 * code: a plain `net.Socket` on fd 3 both ways, `data` events cut at newlines through a string,
 * `JSON.parse` and `JSON.stringify` + `'\n'` (children `child-bare`): node's floor of the hop, so
 * that the channel's own cost is the difference.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  HOST_CHANNEL_FD,
  MessageLines,
  messageLine,
  openHostChannel,
} from '../../packages/worker/src/executor/host-channel.js';
import type { FromHost, ToHost } from '../../packages/worker/src/executor/host-protocol.js';
import { serveIpc } from '../lib/ipc.js';
import { percentile } from '../lib/stats.js';

export interface FloorIpcRun {
  durationS: number;
  /** Round trips to make in all (over every child) instead of for `durationS`. */
  roundTrips?: number;
  /** Round trips with the first child only, one at a time, each timed. */
  oneAtATime?: boolean;
}

/**
 * Round trips made, and the CPU time of the parent and of its children over them, µs; one at a
 * time, also the round trip's p50 and p99 (µs: sent → the answer in the parent).
 */
export interface FloorIpcResult {
  roundTrips: number;
  parentCpuMicros: number;
  childrenCpuMicros: number;
  elapsedMs: number;
  latency?: { p50: number; p99: number };
}

type StatsMessage = { type: 'stats'; cpuMicros?: number };

const cpuMicros = (): number => {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
};

/** A no-op module's `execute` message as the worker sends it (module-host.ts `execute`). */
function executeMessage(index: number): ToHost {
  const name = `m${String(index % 2_000).padStart(5, '0')}`;
  return {
    type: 'execute',
    executionId: `run-0123456789abcdef.${name}.1`,
    moduleName: name,
    // A digest's size (`sha256:` and 64 hex digits), as the worker sends it since round T.
    moduleDigest: `sha256:${'0'.repeat(64)}`,
    params: { sleepMs: 0 },
    results: { m00041: { t: '123456789012345' } },
    resultFiles: null,
    env: {},
    workingDirectory: '/tmp/mpd-worker-0123456789/work',
    leaseEndsAt: 123456789.123,
    secrets: [],
  };
}

/**
 * The bare floor's framing (no mpd code): `onMessage` for each newline-ended line of JSON that
 * `socket` reads; a line cut between reads waits in a string for its end.
 */
function bareLines(socket: Socket, onMessage: (message: unknown) => void): void {
  let pending = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    pending += chunk;
    let newline = pending.indexOf('\n');
    while (newline >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      onMessage(JSON.parse(line));
      newline = pending.indexOf('\n');
    }
  });
}

const role = process.argv[2];
const bare = process.argv[4] === 'bare';
if (role === 'child-bare') {
  const channel = new Socket({ fd: HOST_CHANNEL_FD, readable: true, writable: true });
  bareLines(channel, (received) => {
    const message = received as ToHost | StatsMessage;
    if (message.type === 'stats') {
      channel.write(`${JSON.stringify({ type: 'stats', cpuMicros: cpuMicros() } satisfies StatsMessage)}\n`);
    } else if (message.type === 'execute') {
      const done: FromHost = {
        type: 'done',
        executionId: message.executionId,
        leftoverChildren: 0,
        marked: false,
        ok: true,
        resultText: '{"t":"123456789012345"}',
      };
      channel.write(`${JSON.stringify(done)}\n`);
    }
  });
  channel.on('end', () => process.exit(0));
} else if (role === 'child') {
  const channel: Socket = openHostChannel<ToHost | StatsMessage>(
    (message) => {
      if (message.type === 'stats') {
        channel.write(messageLine({ type: 'stats', cpuMicros: cpuMicros() } satisfies StatsMessage));
      } else if (message.type === 'execute') {
        const done: FromHost = {
          type: 'done',
          executionId: message.executionId,
          leftoverChildren: 0,
          marked: false,
          ok: true,
          resultText: '{"t":"123456789012345"}',
        };
        channel.write(messageLine(done));
      }
    },
    () => process.exit(0),
  );
} else if (role === 'parent') {
  const hosts = Number(process.argv[3] ?? '8');
  const children: ChildProcess[] = Array.from({ length: hosts }, () =>
    spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), bare ? 'child-bare' : 'child'], {
      stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
    }),
  );
  /** Per child, the resolvers of the messages awaited, in order. */
  const waiting = new Map<ChildProcess, ((message: unknown) => void)[]>();
  for (const child of children) {
    const queue: ((message: unknown) => void)[] = [];
    waiting.set(child, queue);
    if (bare) {
      bareLines(child.stdio[HOST_CHANNEL_FD] as Socket, (message) => queue.shift()?.(message));
      continue;
    }
    const lines = new MessageLines(
      (message) => queue.shift()?.(message),
      (error) => {
        throw error;
      },
    );
    (child.stdio[HOST_CHANNEL_FD] as Socket).on('data', (chunk: Buffer) => lines.push(chunk));
  }
  const send = (child: ChildProcess, message: unknown): void => {
    (child.stdio[HOST_CHANNEL_FD] as Socket).write(bare ? `${JSON.stringify(message)}\n` : messageLine(message));
  };
  /** The next message from `child`. */
  const next = <T>(child: ChildProcess): Promise<T> =>
    new Promise((resolve) => waiting.get(child)!.push(resolve as (message: unknown) => void));
  const childrenCpu = async (): Promise<number> => {
    const answers = children.map((child) => next<StatsMessage>(child));
    for (const child of children) send(child, { type: 'stats' } satisfies StatsMessage);
    return (await Promise.all(answers)).reduce((total, answer) => total + answer.cpuMicros!, 0);
  };
  const roundTrip = (child: ChildProcess, index: number): Promise<FromHost> => {
    const answer = next<FromHost>(child);
    send(child, executeMessage(index));
    return answer;
  };
  const run = async ({ durationS, roundTrips: count, oneAtATime = false }: FloorIpcRun): Promise<FloorIpcResult> => {
    // Each child answers once before the measured window (forked and connected).
    await Promise.all(children.map((child, index) => roundTrip(child, index)));
    const childrenBefore = await childrenCpu();
    let roundTrips = 0;
    const started = performance.now();
    const deadline = started + durationS * 1_000;
    const more = count === undefined ? () => performance.now() < deadline : () => roundTrips < count;
    const parentBefore = cpuMicros();
    const times: number[] | undefined = oneAtATime ? [] : undefined;
    await Promise.all(
      (oneAtATime ? children.slice(0, 1) : children).map(async (child) => {
        while (more()) {
          const start = performance.now();
          const done = await roundTrip(child, roundTrips++);
          times?.push((performance.now() - start) * 1_000);
          if (done.type !== 'done') throw new Error(`a child answered ${done.type}`);
        }
      }),
    );
    const parentCpuMicros = cpuMicros() - parentBefore;
    const elapsedMs = performance.now() - started;
    return {
      roundTrips,
      parentCpuMicros,
      childrenCpuMicros: (await childrenCpu()) - childrenBefore,
      elapsedMs,
      ...(times ? { latency: { p50: percentile(times, 50), p99: percentile(times, 99) } } : {}),
    };
  };
  serveIpc({ run: (payload: FloorIpcRun) => run(payload) });
  process.stdout.write(
    `floor IPC parent of ${hosts}${bare ? ' bare' : ''} children listening on http://127.0.0.1/ (ipc)\n`,
  );
  process.on('SIGTERM', () => {
    for (const child of children) child.kill('SIGTERM');
    process.exit(0);
  });
} else {
  throw new Error(`usage: floor-ipc.ts parent HOSTS [bare] | child | child-bare (got ${role})`);
}
