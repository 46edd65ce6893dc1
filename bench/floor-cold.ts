/**
 * Benchmark 8's cold floor (issue 14, round AE): the floor's parts as the judged dispatch figure
 * meets them, on fresh processes. The judged figure (benchmark 2, "CLIs": 2,000 − 10 modules, the
 * orchestrator and 2 workers started for each run) is paid mostly by processes still warming up:
 * V8 compiles the hot path meanwhile, and runs it in its lower tiers until then (docs/round-ad).
 * The warm floor (bench/floor.ts) leaves that out. Here each part runs `size` modules' worth of
 * calls on processes started for it, in the judged run's shape:
 * - **The `execute` exchange**, each rung of bench/floor.ts: one fresh client process (the
 *   orchestrator's part) calling two fresh server processes (the workers' part), `concurrency`
 *   at a time each, `size` calls in all.
 * - **The IPC round trip**, bare pipe echo and mpd's channel: two fresh parents (the workers'
 *   side) with `hosts` fresh children each (the module hosts), `size` round trips in all, one at
 *   a time per child.
 * - **BullMQ**: `size` − 10 jobs on fresh processes (Redis, driver, 2 workers, `concurrency`
 *   each), the judged figure's own counterpart (`BullmqPeer.freshRuns`).
 *
 * CPU is counted from the first measured call to the last (`process.cpuUsage()`: every thread of
 * the process, V8's compiler threads too): the client's after it opened its connections (one call
 * per lane, `2 × concurrency`), the servers' from just before those calls (so theirs are in,
 * spread over every call), the parents' and children's after each parent heard once from each
 * child. As the judged figure subtracts a 10-module run, the processes' starts are not in it. So a rung's
 * figure is what that stack costs per module over a cold worker's first thousand calls, and the
 * sum of node's rung and the bare echo is node's own floor of the judged figure.
 */
import type { FloorClient, FloorClientResult } from './servers/floor-client.js';
import type { FloorIpcResult } from './servers/floor-ipc.js';
import type { ProcessStats } from './lib/ipc.js';
import { BenchProcess, benchPath } from './lib/processes.js';
import { fixedMicros as fixed, microsRow, type Row } from './lib/report.js';
import { median } from './lib/stats.js';
import { perModule, type RunTotals, SMALL } from './cli-path.js';
import { BullmqPeer, type PeerSplit } from './peer.js';

export interface ColdFloorConfig {
  /** Runs of every part, each on fresh processes (0: none). */
  runs: number;
  /** Modules' worth of calls per run (the judged figure's 2,000). */
  size: number;
  /** Calls at a time per server (a worker's slots). */
  concurrency: number;
  /** Children per IPC parent (a worker's module hosts). */
  hosts: number;
  /** Measure BullMQ on fresh processes too. */
  peer: boolean;
}

/** A rung of the exchange: the client and server variants of bench/servers. */
export interface ColdRung {
  client: FloorClient;
  server: 'http' | 'express' | 'ts-rest' | 'api-app';
  label: string;
  adds: string;
}

/** One cold run of a part: CPU per module, µs. */
interface ColdRun {
  /** The client's (HTTP) or the two parents' (IPC). */
  caller: number;
  /** The two servers' (HTTP) or the children's (IPC). */
  callee: number;
  both: number;
}

const SERVERS = 2;
/** Processes of a part starting at once on a busy 2-core machine: as bench/floor.ts. */
const START_MS = 120_000;

async function exchangeRun(rung: ColdRung, index: number, config: ColdFloorConfig): Promise<ColdRun> {
  const servers = Array.from(
    { length: SERVERS },
    (_, n) =>
      new BenchProcess(`floor-cold-server-${index}-${rung.server}-${n}`, benchPath('servers/execute-route.ts'), [
        rung.server,
      ]),
  );
  const client = new BenchProcess(`floor-cold-client-${index}-${rung.client}`, benchPath('servers/floor-client.ts'));
  try {
    const [urls] = await Promise.all([
      Promise.all(servers.map((server) => server.listeningUrl(START_MS))),
      client.listeningUrl(START_MS),
    ]);
    const opened = SERVERS * config.concurrency;
    // The servers' CPU from just before the client's first call: their starts left out.
    const before = await Promise.all(servers.map((server) => server.request<ProcessStats>('stats')));
    const run = await client.request<FloorClientResult>('run', {
      client: rung.client,
      url: urls[0]!,
      urls,
      concurrency: config.concurrency,
      durationS: 0,
      calls: config.size - opened,
    });
    const after = await Promise.all(servers.map((server) => server.request<ProcessStats>('stats')));
    // The servers' CPU includes the connections' first calls (one per lane); the client's does
    // not: spread over the measured calls, that is at most 2 × concurrency / size of a call's.
    const serverMicros = after.reduce((sum, stats, n) => sum + stats.cpuMicros - before[n]!.cpuMicros, 0);
    const caller = run.cpuMicros / run.calls;
    const callee = serverMicros / (run.calls + opened);
    return { caller, callee, both: caller + callee };
  } finally {
    await Promise.all([client, ...servers].map((process) => process.stop()));
  }
}

async function ipcRun(bare: boolean, config: ColdFloorConfig): Promise<ColdRun> {
  const parents = Array.from(
    { length: SERVERS },
    (_, n) =>
      new BenchProcess(`floor-cold-ipc${bare ? '-bare' : ''}-${n}`, benchPath('servers/floor-ipc.ts'), [
        'parent',
        String(config.hosts),
        ...(bare ? ['bare'] : []),
      ]),
  );
  try {
    await Promise.all(parents.map((parent) => parent.listeningUrl(START_MS)));
    const each = Math.max(1, Math.round(config.size / SERVERS) - config.hosts);
    const runs = await Promise.all(
      parents.map((parent) => parent.request<FloorIpcResult>('run', { durationS: 0, roundTrips: each })),
    );
    const trips = runs.reduce((sum, run) => sum + run.roundTrips, 0);
    const caller = runs.reduce((sum, run) => sum + run.parentCpuMicros, 0) / trips;
    const callee = runs.reduce((sum, run) => sum + run.childrenCpuMicros, 0) / trips;
    return { caller, callee, both: caller + callee };
  } finally {
    await Promise.all(parents.map((parent) => parent.stop()));
  }
}

/** BullMQ's `size` − {@link SMALL} jobs on fresh processes, as the judged figure's: CPU per job, all processes, µs; or why not. */
async function peerRun(config: ColdFloorConfig): Promise<number | string> {
  const totals = await BullmqPeer.freshRuns('wide', [SMALL, config.size], SERVERS, config.concurrency);
  if ('unavailable' in totals) return totals.unavailable;
  const [small, size] = totals as [RunTotals<PeerSplit>, RunTotals<PeerSplit>];
  return perModule(size, small).cpuMs * 1_000;
}

export interface ColdFloor {
  rows: Row[];
  details: unknown;
}

/** Runs the cold floor: every rung of `rungs`, both IPC variants and BullMQ, `config.runs` times in rotating order. */
export async function coldFloorBench(config: ColdFloorConfig, rungs: readonly ColdRung[]): Promise<ColdFloor> {
  const exchanges = rungs.map(() => [] as ColdRun[]);
  const bare: ColdRun[] = [];
  const channel: ColdRun[] = [];
  const peer: number[] = [];
  let peerUnavailable: string | undefined;
  const steps: (() => Promise<void>)[] = [
    ...rungs.map((rung, index) => async () => {
      exchanges[index]!.push(await exchangeRun(rung, index, config));
    }),
    async () => {
      bare.push(await ipcRun(true, config));
    },
    async () => {
      channel.push(await ipcRun(false, config));
    },
    ...(config.peer
      ? [
          async () => {
            if (peerUnavailable !== undefined) return;
            const figure = await peerRun(config);
            if (typeof figure === 'string') peerUnavailable = figure;
            else peer.push(figure);
          },
        ]
      : []),
  ];
  for (let run = 0; run < config.runs; run++) {
    for (let step = 0; step < steps.length; step++) await steps[(run + step) % steps.length]!();
  }
  if (peerUnavailable !== undefined) process.stdout.write(`  BullMQ peer (cold) not measured: ${peerUnavailable}\n`);
  const measured: ColdRuns = { exchanges, bare, channel, peer };
  process.stdout.write(coldBreakdown(config, rungs, measured));
  return {
    rows: coldRows(config, rungs, measured),
    details: {
      config,
      rungs: rungs.map((rung, index) => ({ ...rung, runs: exchanges[index] })),
      ipcBare: bare,
      ipc: channel,
      peerMicros: peer,
      peerUnavailable,
    },
  };
}

/** Every cold run of every part, by part. */
interface ColdRuns {
  /** By rung, in the order of the rungs. */
  exchanges: ColdRun[][];
  bare: ColdRun[];
  channel: ColdRun[];
  /** BullMQ's job, µs (none without Redis). */
  peer: number[];
}

function coldRows(config: ColdFloorConfig, rungs: readonly ColdRung[], measured: ColdRuns): Row[] {
  const { exchanges, bare, channel, peer } = measured;
  const benchmark = `8 floor, cold: CPU per module's part on fresh processes (${config.size} modules, ${SERVERS} x ${config.concurrency})`;
  const value = microsRow(benchmark);
  const both = (runs: ColdRun[]): number[] => runs.map((run) => run.both);
  const versusPeer =
    peer.length > 0
      ? { baseline: median(peer), baselineRuns: peer, baselineLabel: `BullMQ job, ${config.size} - ${SMALL}` }
      : {};
  const node = both(exchanges[0]!);
  const rows: Row[] = rungs.map((rung, index) =>
    value(
      `HTTP execute exchange, ${rung.label}: client + ${SERVERS} servers`,
      both(exchanges[index]!),
      index === 0
        ? versusPeer
        : { baseline: median(node), baselineRuns: node, baselineLabel: "node's http both sides" },
    ),
  );
  rungs.forEach((rung, index) => {
    if (index === 0) return;
    const below = both(exchanges[index - 1]!);
    rows.push(
      value(
        `  adds: ${rung.adds}`,
        both(exchanges[index]!).map((micros, run) => micros - below[run]!),
      ),
    );
  });
  const bareBoth = both(bare);
  const channelBoth = both(channel);
  rows.push(
    value('IPC round trip, bare pipe echo (JSON): parents + children', bareBoth, versusPeer),
    value("IPC round trip, mpd's channel (JSON lines): parents + children", channelBoth, {
      baseline: median(bareBoth),
      baselineRuns: bareBoth,
      baselineLabel: 'bare pipe echo',
    }),
    value(
      "node's own cold floor per module: node's http exchange + bare pipe echo",
      node.map((micros, run) => micros + bareBoth[run]!),
      versusPeer,
    ),
    value(
      "mpd's stack cold per module: @mpd/client -> worker app plumbing + mpd's channel",
      both(exchanges[rungs.length - 1]!).map((micros, run) => micros + channelBoth[run]!),
      versusPeer,
    ),
  );
  if (peer.length > 0) {
    rows.push(value(`BullMQ job on fresh processes (${config.size} - ${SMALL}): driver + 2 workers + Redis`, peer));
  }
  return rows;
}

function coldBreakdown(config: ColdFloorConfig, rungs: readonly ColdRung[], measured: ColdRuns): string {
  const { exchanges, bare, channel, peer } = measured;
  const of = (runs: ColdRun[], pick: (run: ColdRun) => number): string => fixed(median(runs.map(pick)));
  const part = (runs: ColdRun[]): string =>
    `${of(runs, (run) => run.caller)} / ${of(runs, (run) => run.callee)} / ${of(runs, (run) => run.both)}`;
  const lines = [
    `  cold floor (fresh processes, ${config.size} modules, medians of ${config.runs}, µs of CPU per module; caller / callees / both):`,
    ...rungs.map((rung, index) => `    ${rung.label}: ${part(exchanges[index]!)}`),
    `    IPC round trip, bare pipe echo, parents / children / both: ${part(bare)}`,
    `    IPC round trip, mpd's channel, parents / children / both: ${part(channel)}`,
  ];
  if (peer.length > 0)
    lines.push(`    BullMQ job on fresh processes (${config.size} - ${SMALL}): ${fixed(median(peer))}`);
  return `${lines.join('\n')}\n`;
}
