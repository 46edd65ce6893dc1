/**
 * Benchmark 1 (heartbeat throughput) for several checkouts at once (issue 14), to compare them in
 * one hold of the machine: bare express (this checkout's `bench/servers/bare-express.ts`) and the
 * bench orchestrator of each CHECKOUT (its own `bench/servers/orchestrator.ts`, so its own
 * packages) run side by side; each gets the same 100 simulated workers' heartbeats from
 * autocannon (16 connections), one server at a time, `runs` rounds, the order rotating each
 * round. Prints per run and as medians: heartbeats/s, the ratio to the bare express run of the
 * same round, and the server's CPU per heartbeat (user + system from /proc, µs).
 *
 *   tsx bench/heartbeat-compare.ts [--runs 3] [--duration 5] [--cpu-prof] [CHECKOUT...]
 *
 * Each CHECKOUT is a repository root (default: this one). `--cpu-prof` profiles every server
 * into `bench/profiles/` (summarise with `tsx bench/profile-summary.ts FILE`).
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { benchArgs } from './lib/args.js';
import { heartbeatRequest, registerWorkers, runLoad } from './lib/load.js';
import { ADMIN_TOKEN, BenchProcess, benchPath, JOIN_TOKEN, killAll, ROOT } from './lib/processes.js';
import { median } from './lib/stats.js';

const { values, positionals: args } = benchArgs(
  'usage: tsx bench/heartbeat-compare.ts [--runs 3] [--duration 5] [--cpu-prof] [CHECKOUT...]',
  {
    runs: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    'cpu-prof': { type: 'boolean' },
  },
);
const runs = Number(values.runs);
const durationS = Number(values.duration);
if (values['cpu-prof']) process.env.MPD_BENCH_CPU_PROF_DIR = benchPath('profiles');
const checkouts = args.length === 0 ? [ROOT] : args;
const CONNECTIONS = 16;
const WORKERS = 100;
const WARMUP_S = 3;

process.on('SIGINT', () => {
  killAll();
  process.exit(130);
});
const load = () =>
  loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');

interface Server {
  name: string;
  process: BenchProcess;
  url: string;
  requests: ReturnType<typeof heartbeatRequest>[];
}

const env = { MPD_BENCH_JOIN_TOKEN: JOIN_TOKEN, MPD_BENCH_ADMIN_TOKEN: ADMIN_TOKEN };
const processes = [
  new BenchProcess('bare-express', benchPath('servers/bare-express.ts')),
  ...checkouts.map(
    (root, index) => new BenchProcess(`orchestrator-${index}`, join(root, 'bench/servers/orchestrator.ts'), [], env),
  ),
];
const servers: Server[] = [];
for (const [index, server] of processes.entries()) {
  const url = await server.listeningUrl();
  // The bare server takes any body: it gets the first orchestrator's workers' heartbeats.
  const requests = index === 0 ? [] : (await registerWorkers(url, WORKERS, 'hb')).workers.map(heartbeatRequest);
  servers.push({ name: index === 0 ? 'bare express' : checkouts[index - 1]!, process: server, url, requests });
}
servers[0]!.requests = servers[1]!.requests;

process.stdout.write(`load average ${load()}; ${runs} runs of ${durationS} s, ${CONNECTIONS} connections\n`);
const measure = async (server: Server, seconds: number) => {
  const cpuBefore = server.process.cpuMs();
  const result = await runLoad({
    url: server.url,
    connections: CONNECTIONS,
    duration: seconds,
    requests: server.requests,
  });
  const cpuMs = server.process.cpuMs() - cpuBefore;
  if (result.non2xx + result.errors > 0)
    throw new Error(`${server.name}: ${result.non2xx + result.errors} failed heartbeats`);
  return { perSecond: result.perSecond, cpuUs: (cpuMs * 1_000) / result.ok };
};
for (const server of servers) await measure(server, WARMUP_S);

const figures = new Map<string, { perSecond: number; ratio: number; cpuUs: number }[]>();
for (let run = 0; run < runs; run++) {
  const round = new Map<string, { perSecond: number; cpuUs: number }>();
  for (let step = 0; step < servers.length; step++) {
    const server = servers[(run + step) % servers.length]!;
    round.set(server.name, await measure(server, durationS));
  }
  const bare = round.get('bare express')!;
  for (const [name, { perSecond, cpuUs }] of round) {
    const ratio = perSecond / bare.perSecond;
    figures.set(name, [...(figures.get(name) ?? []), { perSecond, ratio, cpuUs }]);
    process.stdout.write(
      `run ${run + 1} ${name}: ${perSecond.toFixed(0)}/s, ratio ${ratio.toFixed(3)}, ${cpuUs.toFixed(1)} µs CPU per heartbeat\n`,
    );
  }
}
for (const [name, list] of figures) {
  process.stdout.write(
    `median ${name}: ${median(list.map((f) => f.perSecond)).toFixed(0)}/s, ratio ${median(list.map((f) => f.ratio)).toFixed(3)}, ${median(list.map((f) => f.cpuUs)).toFixed(1)} µs CPU per heartbeat\n`,
  );
}
process.stdout.write(`load average at the end ${load()}\n`);
await Promise.all(processes.map((process_) => process_.stop()));
killAll();
