/**
 * Benchmark 8, the floor (issue 14): the irreducible parts of one module in mpd's design, each
 * alone, warm, as CPU per operation summed over both processes of it, beside BullMQ's whole job
 * measured in the same run. Issue 14 lets a target be missed only "with a profile that shows
 * which library's per-request cost bounds it and by how much": this gives those amounts.
 * - **The `execute` exchange** over keep-alive loopback connections, `concurrency` at a time (as
 *   the orchestrator's calls to one worker), the same request and answer sizes as a no-op
 *   module's, one rung of libraries at a time (a client process, bench/servers/floor-client.ts,
 *   against a server process, bench/servers/execute-route.ts): node's `http` client and server;
 *   undici's `request` as the client; express + `express.json()` as the server; ts-rest's client
 *   and express + ts-rest + zod on the worker contract; `@mpd/client` and the worker's app
 *   plumbing (server-kit's `createApiApp`, a bearer check): what of the exchange is mpd's own.
 *   Each rung's CPU minus the one below is what that layer adds, client and server apart.
 * - **The IPC round trip** worker ⇄ module host: mpd's channel (a pipe on fd 3, one line of JSON
 *   per message, `host-channel.ts`), an `execute` message and a `done` answer of a no-op module's
 *   size, `hosts` children one at a time each (bench/servers/floor-ipc.ts); beside it (round X)
 *   the same exchange as a bare pipe echo (a plain `net.Socket` on fd 3, `JSON.parse` /
 *   `JSON.stringify`, no mpd code): node's floor of the hop.
 * - **BullMQ's job** (bench/peer.ts, wide, 2 workers x `concurrency`, after a warm-up run):
 *   driver, workers and Redis, per job.
 * Node's own floor per module is the first rung plus the IPC round trip; the rest of a module's
 * cost through the CLIs (benchmark 2's warm figure) is the libraries' (the rungs above) and
 * mpd's own code. And one at a time (`latencyS`), the round trip's p50 of each rung and of the
 * IPC, against BullMQ's chain hop p50 (a job ends → the next one, added by the driver once it
 * learnt of the completion, starts): a chain's hop in mpd is at least one `execute` round trip
 * and one IPC round trip. Alternating order across runs; values are medians.
 * Last, with `coldRuns`, the same parts on fresh processes, as the judged dispatch figure meets
 * them (bench/floor-cold.ts, round AE).
 */
import { coldFloorBench, type ColdRung } from './floor-cold.js';
import { type FloorClientResult } from './servers/floor-client.js';
import type { FloorIpcResult } from './servers/floor-ipc.js';
import type { ProcessStats } from './lib/ipc.js';
import { BenchProcess, benchPath } from './lib/processes.js';
import { fixedMicros as fixed, microsRow, type Row } from './lib/report.js';
import { median, percentile } from './lib/stats.js';
import { BullmqPeer, type PeerFigures } from './peer.js';

export interface FloorConfig {
  runs: number;
  /** Each HTTP rung's and the IPC's measured window, s. */
  durationS: number;
  /** One unmeasured window of each first, s (0: none). */
  warmupS: number;
  /** HTTP calls at a time (one worker's slots). */
  concurrency: number;
  /** IPC children, one round trip at a time each (one worker's module hosts). */
  hosts: number;
  /** BullMQ's jobs per run (wide), on 2 workers x `concurrency`; 0: no peer. */
  peerJobs: number;
  /** Each rung's and the IPC's window one at a time (latency), s; 0: none. */
  latencyS: number;
  /** BullMQ's chain jobs per run, for its hop (0: none). */
  peerChainJobs: number;
  /** Runs of the cold floor, each part on fresh processes (bench/floor-cold.ts; 0: none). */
  coldRuns: number;
  /** The cold floor's modules per run (the judged dispatch figure's 2,000). */
  coldSize: number;
}

export const FLOOR_FULL: FloorConfig = {
  runs: 3,
  durationS: 2,
  warmupS: 1,
  concurrency: 8,
  hosts: 8,
  peerJobs: 4_000,
  latencyS: 1,
  peerChainJobs: 1_000,
  coldRuns: 3,
  coldSize: 2_000,
};
export const FLOOR_SMOKE: FloorConfig = {
  runs: 1,
  durationS: 0.3,
  warmupS: 0,
  concurrency: 2,
  hosts: 2,
  peerJobs: 40,
  latencyS: 0.2,
  peerChainJobs: 20,
  coldRuns: 1,
  coldSize: 40,
};

type Server = 'http' | 'express' | 'ts-rest' | 'api-app';

/** The HTTP rungs, each one layer above the one before. */
const RUNGS: (ColdRung & { server: Server })[] = [
  { client: 'http', server: 'http', label: "node's http client -> node's http server", adds: '' },
  { client: 'undici', server: 'http', label: "undici's request -> node's http server", adds: "undici's request" },
  {
    client: 'undici',
    server: 'express',
    label: 'undici -> express + express.json()',
    adds: 'express + express.json() (body-parser)',
  },
  {
    client: 'ts-rest',
    server: 'ts-rest',
    label: "ts-rest's client on undici -> express + ts-rest + zod",
    adds: "ts-rest (client and server) + zod (the server's body validation)",
  },
  {
    client: 'mpd-client',
    server: 'api-app',
    label: "@mpd/client -> the worker's app plumbing (createApiApp, bearer check)",
    // Since round G @mpd/client's execute goes past ts-rest's client (directRoute): this step
    // takes ts-rest's client out and puts mpd's call and fetcher in.
    adds: "mpd's own plumbing (@mpd/client's direct call and fetcher for ts-rest's client, server-kit's app, the bearer check)",
  },
];

/** A round trip's time one at a time, µs. */
interface Latency {
  p50: number;
  p99: number;
}

/** One rung's run: per exchange, µs of CPU; one at a time, its latency too. */
interface Exchange {
  client: number;
  server: number;
  both: number;
  perSecond: number;
  latency?: Latency | undefined;
}

interface Ipc {
  parent: number;
  child: number;
  both: number;
  perSecond: number;
  latency?: Latency | undefined;
}

export async function floorBench(config: FloorConfig): Promise<{ rows: Row[]; details: unknown }> {
  const warm = await warmFloorBench(config);
  if (config.coldRuns === 0) return warm;
  // After the warm floor's processes stopped: the cold floor's fresh ones have the machine.
  const cold = await coldFloorBench(
    {
      runs: config.coldRuns,
      size: config.coldSize,
      concurrency: config.concurrency,
      hosts: config.hosts,
      peer: config.peerJobs > 0,
    },
    RUNGS,
  );
  return { rows: [...warm.rows, ...cold.rows], details: { ...(warm.details as object), cold: cold.details } };
}

/** The warm floor: the parts on processes kept for the whole benchmark, after a warm-up window. */
async function warmFloorBench(config: FloorConfig): Promise<{ rows: Row[]; details: unknown }> {
  const servers = new Map<Server, BenchProcess>(
    [...new Set(RUNGS.map((rung) => rung.server))].map((server) => [
      server,
      new BenchProcess(`floor-server-${server}`, benchPath('servers/execute-route.ts'), [server]),
    ]),
  );
  const clients = RUNGS.map(
    (rung, index) => new BenchProcess(`floor-client-${index}-${rung.client}`, benchPath('servers/floor-client.ts')),
  );
  const ipc = new BenchProcess('floor-ipc', benchPath('servers/floor-ipc.ts'), ['parent', String(config.hosts)]);
  const ipcBare = new BenchProcess('floor-ipc-bare', benchPath('servers/floor-ipc.ts'), [
    'parent',
    String(config.hosts),
    'bare',
  ]);
  let peer: BullmqPeer | undefined;
  let peerUnavailable: string | undefined;
  try {
    const urls = new Map<Server, string>();
    // Ten processes (and the IPC parents' children) start at once: on a busy 2-core machine their
    // tsx starts alone can take more than the usual 30 s.
    const startMs = 120_000;
    await Promise.all([
      ...[...servers].map(async ([server, process]) => urls.set(server, await process.listeningUrl(startMs))),
      ...clients.map((client) => client.listeningUrl(startMs)),
      ipc.listeningUrl(startMs),
      ipcBare.listeningUrl(startMs),
    ]);
    if (config.peerJobs > 0) {
      const started = await BullmqPeer.start(2, config.concurrency);
      if ('unavailable' in started) peerUnavailable = started.unavailable;
      else peer = started;
    }
    const exchange = async (index: number, durationS: number, concurrency = config.concurrency): Promise<Exchange> => {
      const server = servers.get(RUNGS[index]!.server)!;
      const before = await server.request<ProcessStats>('stats');
      const run = await clients[index]!.request<FloorClientResult>('run', {
        client: RUNGS[index]!.client,
        url: urls.get(RUNGS[index]!.server)!,
        concurrency,
        durationS,
      });
      const after = await server.request<ProcessStats>('stats');
      const client = run.cpuMicros / run.calls;
      const serverMicros = (after.cpuMicros - before.cpuMicros) / run.calls;
      return {
        client,
        server: serverMicros,
        both: client + serverMicros,
        perSecond: run.calls / (run.elapsedMs / 1_000),
        latency: run.latency,
      };
    };
    const roundTrips = async (durationS: number, oneAtATime = false, through = ipc): Promise<Ipc> => {
      const run = await through.request<FloorIpcResult>('run', { durationS, oneAtATime });
      const parent = run.parentCpuMicros / run.roundTrips;
      const child = run.childrenCpuMicros / run.roundTrips;
      return {
        parent,
        child,
        both: parent + child,
        perSecond: run.roundTrips / (run.elapsedMs / 1_000),
        latency: run.latency,
      };
    };
    if (config.warmupS > 0) {
      for (let index = 0; index < RUNGS.length; index++) await exchange(index, config.warmupS);
      await roundTrips(config.warmupS);
      await roundTrips(config.warmupS, false, ipcBare);
    }
    if (peer) await peer.run('wide', config.peerJobs);
    const chainJobs = config.latencyS > 0 ? config.peerChainJobs : 0;
    if (peer && chainJobs > 0) await peer.run('chain', chainJobs);

    const exchanges = RUNGS.map(() => [] as Exchange[]);
    const ipcRuns: Ipc[] = [];
    const bareRuns: Ipc[] = [];
    const peerRuns: PeerFigures[] = [];
    const single = RUNGS.map(() => [] as Exchange[]);
    const ipcSingle: Ipc[] = [];
    const bareSingle: Ipc[] = [];
    const peerChain: PeerFigures[] = [];
    const steps: (() => Promise<unknown>)[] = [
      ...RUNGS.map((_, index) => async () => exchanges[index]!.push(await exchange(index, config.durationS))),
      async () => ipcRuns.push(await roundTrips(config.durationS)),
      async () => bareRuns.push(await roundTrips(config.durationS, false, ipcBare)),
      ...(peer ? [async () => peerRuns.push(await peer!.run('wide', config.peerJobs))] : []),
      ...(config.latencyS > 0
        ? [
            ...RUNGS.map((_, index) => async () => single[index]!.push(await exchange(index, config.latencyS, 1))),
            async () => ipcSingle.push(await roundTrips(config.latencyS, true)),
            async () => bareSingle.push(await roundTrips(config.latencyS, true, ipcBare)),
          ]
        : []),
      ...(peer && chainJobs > 0 ? [async () => peerChain.push(await peer!.run('chain', chainJobs))] : []),
    ];
    // Each run in another order, so that none of them always goes first.
    for (let run = 0; run < config.runs; run++) {
      for (let step = 0; step < steps.length; step++) await steps[(run + step) % steps.length]!();
    }
    if (peerUnavailable !== undefined) process.stdout.write(`  BullMQ peer not measured: ${peerUnavailable}\n`);
    const rows = [
      ...floorRows(config, exchanges, ipcRuns, bareRuns, peerRuns),
      ...latencyRows(single, ipcSingle, bareSingle, peerChain),
    ];
    process.stdout.write(breakdown(exchanges, ipcRuns, bareRuns, peerRuns));
    if (config.latencyS > 0) process.stdout.write(latencyBreakdown(single, ipcSingle, bareSingle, peerChain));
    return {
      rows,
      details: {
        config,
        rungs: RUNGS.map((rung, index) => ({ ...rung, runs: exchanges[index], oneAtATime: single[index] })),
        ipc: ipcRuns,
        ipcOneAtATime: ipcSingle,
        ipcBare: bareRuns,
        ipcBareOneAtATime: bareSingle,
        peer: peerRuns.map((figures) => ({ jobsPerSecond: figures.jobsPerSecond, cpuMs: figures.cpuMs })),
        peerChainHops: peerChain.map((figures) => ({
          p50: percentile(figures.hops, 50),
          p99: percentile(figures.hops, 99),
        })),
        peerUnavailable,
      },
    };
  } finally {
    await Promise.all([
      ...[...servers.values(), ...clients, ipc, ipcBare].map((process) => process.stop()),
      peer?.stop(),
    ]);
  }
}

/** A BullMQ job's CPU, all processes, µs. */
const jobMicros = (figures: PeerFigures): number => figures.cpuMs.total * 1_000;

function floorRows(config: FloorConfig, exchanges: Exchange[][], ipc: Ipc[], bare: Ipc[], peer: PeerFigures[]): Row[] {
  const benchmark = `8 floor, CPU per module's part (${config.concurrency} at a time)`;
  const both = (index: number): number[] => exchanges[index]!.map((run) => run.both);
  const peerRuns = peer.map(jobMicros);
  const versusPeer =
    peer.length > 0 ? { baseline: median(peerRuns), baselineRuns: peerRuns, baselineLabel: 'BullMQ job' } : {};
  const rows: Row[] = [];
  const value = microsRow(benchmark);
  RUNGS.forEach((rung, index) => {
    rows.push(
      value(
        `HTTP execute exchange, ${rung.label}: client + server`,
        both(index),
        index === 0
          ? versusPeer
          : { baseline: median(both(0)), baselineRuns: both(0), baselineLabel: "node's http both sides" },
      ),
    );
  });
  // What each layer adds: the run-by-run difference to the rung below (the runs of a bench run
  // are paired by index; their medians).
  RUNGS.forEach((rung, index) => {
    if (index === 0) return;
    const added = both(index).map((micros, run) => micros - both(index - 1)[run]!);
    rows.push(value(`  adds: ${rung.adds}`, added));
  });
  const ipcBoth = ipc.map((run) => run.both);
  const bareBoth = bare.map((run) => run.both);
  rows.push(
    value('IPC round trip worker <-> module host, bare pipe echo (JSON): parent + child', bareBoth, versusPeer),
    value("IPC round trip worker <-> module host, mpd's channel (JSON lines): parent + child", ipcBoth, {
      baseline: median(bareBoth),
      baselineRuns: bareBoth,
      baselineLabel: 'bare pipe echo',
    }),
    value(
      "  adds: mpd's channel (MessageLines, the onread buffer)",
      ipcBoth.map((micros, run) => micros - (bareBoth[run] ?? Number.NaN)),
    ),
  );
  const floor = both(0).map((micros, run) => micros + (bareBoth[run] ?? Number.NaN));
  rows.push(value("node's own floor per module: node's http exchange + bare pipe echo", floor, versusPeer));
  const top = RUNGS.length - 1;
  const stack = both(top).map((micros, run) => micros + (ipcBoth[run] ?? Number.NaN));
  rows.push(value("mpd's stack per module: @mpd/client -> worker app plumbing + IPC round trip", stack, versusPeer));
  if (peer.length > 0) rows.push(value('BullMQ job: driver + 2 workers + Redis', peerRuns));
  return rows;
}

/** The per-part table on stdout: medians, µs of CPU per module, each side apart. */
function breakdown(exchanges: Exchange[][], ipc: Ipc[], bare: Ipc[], peer: PeerFigures[]): string {
  const of = <T>(runs: T[], pick: (run: T) => number): number => median(runs.map(pick));
  const lines = ['  floor (medians, µs of CPU per module; client / server / both):'];
  RUNGS.forEach((rung, index) => {
    const runs = exchanges[index]!;
    const previous = index > 0 ? exchanges[index - 1]! : undefined;
    const delta = (pick: (run: Exchange) => number): string =>
      previous ? ` (+${fixed(of(runs, pick) - of(previous, pick))})` : '';
    lines.push(
      `    ${rung.label}: ${fixed(of(runs, (run) => run.client))}${delta((run) => run.client)} / ${fixed(of(runs, (run) => run.server))}${delta((run) => run.server)} / ${fixed(of(runs, (run) => run.both))}${delta((run) => run.both)}; ${of(runs, (run) => run.perSecond).toFixed(0)}/s`,
    );
  });
  lines.push(
    `    IPC round trip, bare pipe echo, parent / child / both: ${fixed(of(bare, (run) => run.parent))} / ${fixed(of(bare, (run) => run.child))} / ${fixed(of(bare, (run) => run.both))}; ${of(bare, (run) => run.perSecond).toFixed(0)}/s`,
    `    IPC round trip, mpd's channel, parent / child / both: ${fixed(of(ipc, (run) => run.parent))} / ${fixed(of(ipc, (run) => run.child))} / ${fixed(of(ipc, (run) => run.both))}; ${of(ipc, (run) => run.perSecond).toFixed(0)}/s`,
  );
  if (peer.length > 0) {
    lines.push(
      `    BullMQ job, driver / 2 workers / Redis / all: ${fixed(of(peer, (run) => run.cpuMs.driver * 1_000))} / ${fixed(of(peer, (run) => run.cpuMs.workers * 1_000))} / ${fixed(of(peer, (run) => run.cpuMs.redis * 1_000))} / ${fixed(of(peer, jobMicros))}; ${of(peer, (run) => run.jobsPerSecond).toFixed(0)} jobs/s`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** BullMQ's chain hop p50 of a run, µs. */
const hopMicros = (figures: PeerFigures, p = 50): number => percentile(figures.hops, p) * 1_000;

/** One at a time: each rung's and the IPC's round trip p50, and the hop floors, against BullMQ's chain hop p50. */
function latencyRows(single: Exchange[][], ipc: Ipc[], bare: Ipc[], peerChain: PeerFigures[]): Row[] {
  if (ipc.length === 0) return [];
  const benchmark = "8 floor, one at a time (a chain hop's parts)";
  const p50 = (runs: { latency?: Latency | undefined }[]): number[] => runs.map((run) => run.latency!.p50);
  const hops = peerChain.map((figures) => hopMicros(figures));
  const versusHop =
    hops.length > 0 ? { baseline: median(hops), baselineRuns: hops, baselineLabel: 'BullMQ chain hop p50' } : {};
  const value = microsRow(benchmark);
  const rows = RUNGS.map((rung, index) =>
    value(
      `HTTP execute round trip p50, ${rung.label}`,
      p50(single[index]!),
      index === 0
        ? versusHop
        : { baseline: median(p50(single[0]!)), baselineRuns: p50(single[0]!), baselineLabel: "node's http both sides" },
    ),
  );
  const ipcP50 = p50(ipc);
  const bareP50 = p50(bare);
  rows.push(value('IPC round trip p50 worker <-> module host', ipcP50, versusHop));
  rows.push(value('IPC round trip p50, bare pipe echo', bareP50, versusHop));
  const sum = (http: number[], over = ipcP50) => http.map((micros, run) => micros + (over[run] ?? Number.NaN));
  rows.push(
    value(
      "node's own hop floor: node's http round trip p50 + bare pipe echo p50",
      sum(p50(single[0]!), bareP50),
      versusHop,
    ),
  );
  rows.push(
    value(
      "mpd's stack hop floor: @mpd/client -> worker app plumbing round trip p50 + IPC p50",
      sum(p50(single[RUNGS.length - 1]!)),
      versusHop,
    ),
  );
  if (hops.length > 0) rows.push(value('BullMQ chain hop p50 (a job ends -> the next one starts)', hops));
  // The CPU of an exchange that wakes idle processes (no other call to share a read or a turn of
  // the event loop with): the other end of the range the figures at `concurrency` start.
  const cpu = (runs: { both: number }[]): number[] => runs.map((run) => run.both);
  const cpuSum = (http: number[], over = ipc) => http.map((micros, run) => micros + (cpu(over)[run] ?? Number.NaN));
  rows.push(
    value("CPU: node's http exchange + bare pipe echo, one at a time", cpuSum(cpu(single[0]!), bare)),
    value(
      'CPU: @mpd/client -> worker app plumbing exchange + IPC round trip, one at a time',
      cpuSum(cpu(single[RUNGS.length - 1]!)),
    ),
  );
  return rows;
}

/** The one-at-a-time table on stdout: medians of p50 / p99, µs. */
function latencyBreakdown(single: Exchange[][], ipc: Ipc[], bare: Ipc[], peerChain: PeerFigures[]): string {
  const of = (runs: { latency?: Latency | undefined }[], pick: (latency: Latency) => number): string =>
    fixed(median(runs.map((run) => pick(run.latency!))));
  const cpu = <T>(runs: T[], pick: (run: T) => number): string => fixed(median(runs.map(pick)));
  const lines = ["  one at a time (medians of the runs' p50 / p99, µs; CPU per round trip: client / server / both):"];
  RUNGS.forEach((rung, index) => {
    const runs = single[index]!;
    lines.push(
      `    ${rung.label}: ${of(runs, (l) => l.p50)} / ${of(runs, (l) => l.p99)}; CPU ${cpu(runs, (run) => run.client)} / ${cpu(runs, (run) => run.server)} / ${cpu(runs, (run) => run.both)}`,
    );
  });
  lines.push(
    `    IPC round trip, mpd's channel: ${of(ipc, (l) => l.p50)} / ${of(ipc, (l) => l.p99)}; CPU ${cpu(ipc, (run) => run.parent)} / ${cpu(ipc, (run) => run.child)} / ${cpu(ipc, (run) => run.both)}`,
    `    IPC round trip, bare pipe echo: ${of(bare, (l) => l.p50)} / ${of(bare, (l) => l.p99)}; CPU ${cpu(bare, (run) => run.parent)} / ${cpu(bare, (run) => run.child)} / ${cpu(bare, (run) => run.both)}`,
  );
  if (peerChain.length > 0) {
    lines.push(
      `    BullMQ chain hop: ${fixed(median(peerChain.map((figures) => hopMicros(figures))))} / ${fixed(median(peerChain.map((figures) => hopMicros(figures, 99))))}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
