/**
 * Benchmark 7's servers taken apart, by hand (issue 14, round H): any of the execute route's
 * servers (`bench/servers/execute-route.ts`: `http`, `http-body-parser`, `http-prototypes`,
 * `http-messages`, `express-bare-end`, `express-bare`, `express-raw`, `express`,
 * `express-no-query`, `ts-rest`, `api-app`), each from the checkout named, the same autocannon
 * load on each in turn, alternating after a 1 s warm-up; per server, CPU per request (µs, the
 * median and each run) and requests/s. With `--connections 1`, one request at a time: the round
 * trip is 1 / requests/s.
 *
 *   tsx bench/route-split.ts [--runs 3] [--duration 3] [--connections 8] CHECKOUT:VARIANT...
 */
import { BenchProcess } from './lib/processes.js';
import { measureRoute } from './route.js';
import { median } from './lib/stats.js';
import { benchArgs } from './lib/args.js';
import { loadavg } from 'node:os';

const { values, positionals: args } = benchArgs(
  'usage: tsx bench/route-split.ts [--runs 3] [--duration 3] [--connections 8] CHECKOUT:VARIANT...',
  {
    runs: { type: 'string', default: '3' },
    duration: { type: 'string', default: '3' },
    connections: { type: 'string', default: '8' },
  },
);
const runs = Number(values.runs);
const durationS = Number(values.duration);
const connections = Number(values.connections);
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
  const measure = (index: number, duration: number) =>
    measureRoute(servers[index]!, urls[index]!, specs[index]!.name, connections, duration);
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
