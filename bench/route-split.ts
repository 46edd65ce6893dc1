/**
 * Experiment (round H): the execute route's servers of several checkouts and variants, the same
 * autocannon load on each in turn, alternating; server CPU per request.
 *   tsx bench/route-split.ts --runs 3 --duration 3 CHECKOUT:VARIANT...
 */
import { executeBody } from './lib/execute-body.js';
import { runLoad } from './lib/load.js';
import { BenchProcess, WORKER_TOKEN } from './lib/processes.js';
import { median } from './lib/stats.js';
import { takeOption } from './lib/args.js';
import type { ProcessStats } from './lib/ipc.js';
import { loadavg } from 'node:os';

const args = process.argv.slice(2);
const runs = Number(takeOption(args, 'runs', '3'));
const durationS = Number(takeOption(args, 'duration', '3'));
const connections = Number(takeOption(args, 'connections', '8'));
const specs = args.map((arg) => {
  const [root, variant] = arg.split(':') as [string, string];
  return { name: arg, root, variant };
});
process.stdout.write(
  `load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}\n`,
);
const servers = specs.map(
  (spec) => new BenchProcess(`route-${spec.variant}`, `${spec.root}/bench/servers/execute-route.ts`, [spec.variant]),
);
try {
  const urls = await Promise.all(servers.map((server) => server.listeningUrl()));
  const request = {
    method: 'POST' as const,
    path: '/api/execution/execute',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${WORKER_TOKEN}` },
    body: executeBody(),
  };
  const measure = async (index: number, duration: number) => {
    const before = await servers[index]!.request<ProcessStats>('stats');
    const load = await runLoad({ url: urls[index]!, connections, duration, requests: [request] });
    const after = await servers[index]!.request<ProcessStats>('stats');
    if (load.ok === 0 || load.non2xx > 0) throw new Error(`${specs[index]!.name}: ${load.non2xx} answers not 2xx`);
    return { perSecond: load.perSecond, cpuMicros: (after.cpuMicros - before.cpuMicros) / load.ok };
  };
  for (let index = 0; index < servers.length; index++) await measure(index, 1);
  const results = specs.map(() => [] as { perSecond: number; cpuMicros: number }[]);
  for (let run = 0; run < runs; run++) {
    for (let step = 0; step < servers.length; step++) {
      const index = (run + step) % servers.length;
      results[index]!.push(await measure(index, durationS));
    }
  }
  specs.forEach((spec, index) => {
    const cpu = results[index]!.map((r) => r.cpuMicros);
    process.stdout.write(
      `${spec.name.padEnd(40)} ${median(cpu).toFixed(1)} us/request (${cpu.map((c) => c.toFixed(1)).join(', ')}); ${median(results[index]!.map((r) => r.perSecond)).toFixed(0)}/s\n`,
    );
  });
  process.stdout.write(
    `load at the end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
} finally {
  await Promise.all(servers.map((server) => server.stop()));
}
