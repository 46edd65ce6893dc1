/**
 * What a start of a CLI process costs (round R, R4): the CPU of the whole process (all its
 * threads) for `--help`, a bad flag, a bad setting, and a start until it prints its listening
 * line, for the worker's and the orchestrator's commands as the tests and `pnpm worker` start
 * them (`node --import tsx CHECKOUT/packages/{worker,orchestrator}/src/cli/main.ts ARGS`).
 * Checkouts alternate run by run; prints each case's median, range and exit code per checkout.
 *
 * How the CPU is read: a process that exits by itself writes `process.cpuUsage()` (user +
 * system, µs, every thread) when it exits (`lib/cpu-at-exit.mjs`, preloaded before tsx, the same
 * file for every checkout); a started server is read once it printed `listening on`, from
 * `/proc/PID/task/*\/schedstat` (ns on a CPU, each live thread), then killed with its process
 * group. No MPD_* variable reaches the processes.
 *
 * `--loader PATH` starts them with `--import CHECKOUT/PATH` instead of `--import tsx` (the test
 * kit's way: `packages/cli/tsx-loader.mjs`, round X), and `--node-flags=FLAGS` gives node flags before
 * it (the tests': `--interrupt-budget=1081344` on Node 20).
 *
 * `--installed` starts them as a user who installed mpd does: each checkout's packages packed
 * (`pnpm pack:all` in it) and installed with npm into a directory of their own beside a
 * one-module `pipeline.ts`, then `node DIR/node_modules/@mpd/cli/dist/main.js worker|orchestrator
 * ARGS` (the `mpd` bin), no loader given (`mpd` registers tsx itself for a pipeline file; round
 * AC). The `*-pipeline-*` cases give `--pipeline` (from a checkout: its
 * `bench/pipelines/bench.pipeline.ts`, one module); the module host case has no installed form.
 * `worker-pipeline-registered` (round AD) also gives `--orchestrator`: one bench orchestrator
 * (`bench/servers/orchestrator.ts`, a registry with no pipeline) started for all its runs, and the
 * worker is read once it logged that it registered: its first call (undici loaded) included, and
 * its module host's CPU (`--slots 1`: one host, ready with the pipeline loaded) added.
 *
 *   tsx bench/cli-start.ts [--runs 7] [--cases worker-help,…] [--loader PATH] [--node-flags='…'] [--installed] [CHECKOUT...]
 */
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs } from './lib/args.js';
import { dagEnv } from './lib/dag.js';
import { BenchProcess, benchPath, JOIN_TOKEN, ROOT, startBenchOrchestrator } from './lib/processes.js';
import { descendantsCpuMs, threadsCpuMs } from './lib/proc-times.js';
import { median } from './lib/stats.js';

/** The cases: the command, its arguments, and whether it keeps running (read at its listening line). */
const CASES = {
  'worker-help': { command: 'worker', args: ['--help'], serves: false },
  'worker-bad-flag': { command: 'worker', args: ['--no-such-flag'], serves: false },
  'worker-bad-setting': { command: 'worker', args: ['--port', 'x'], serves: false },
  'worker-listening': {
    command: 'worker',
    args: ['--port', '0', '--host', '127.0.0.1', '--log-level', 'silent'],
    serves: true,
  },
  'orchestrator-help': { command: 'orchestrator', args: ['--help'], serves: false },
  'orchestrator-bad-flag': { command: 'orchestrator', args: ['--no-such-flag'], serves: false },
  'orchestrator-bad-setting': { command: 'orchestrator', args: ['--port', 'x'], serves: false },
  'orchestrator-listening': {
    command: 'orchestrator',
    args: ['--port', '0', '--host', '127.0.0.1', '--log-level', 'silent'],
    serves: true,
  },
  // Round AC: with a pipeline file, which `mpd` loads TypeScript for (see `--installed`).
  'worker-pipeline-listening': {
    command: 'worker',
    args: ['--port', '0', '--host', '127.0.0.1', '--log-level', 'silent', '--slots', '1', '--pipeline', 'PIPELINE'],
    serves: true,
  },
  'orchestrator-pipeline-listening': {
    command: 'orchestrator',
    args: ['--port', '0', '--host', '127.0.0.1', '--log-level', 'silent', '--pipeline', 'PIPELINE'],
    serves: true,
  },
  // Round AD: with a pipeline file and an orchestrator (the bench's, started once, a registry
  // only), read when it registered: its start as a worker's in CI, the client's first call in it.
  'worker-pipeline-registered': {
    command: 'worker',
    args: [
      ...['--port', '0', '--host', '127.0.0.1', '--log-level', 'info', '--slots', '1', '--pipeline', 'PIPELINE'],
      ...['--orchestrator', 'ORCHESTRATOR', '--id', 'ID'],
    ],
    serves: true,
  },
  // Round Z (Z3): a module host as the worker starts one, read when it said it is ready
  // (`lib/host-start.ts`: the host's own CPU, not its starter's).
  'module-host-ready': { command: 'host', args: [], serves: false },
} as const;
type CaseName = keyof typeof CASES;

const { values, positionals } = benchArgs(
  "usage: tsx bench/cli-start.ts [--runs 7] [--cases worker-help,…] [--loader PATH] [--node-flags='…'] [--installed] [CHECKOUT...]",
  {
    installed: { type: 'boolean', default: false },
    runs: { type: 'string', default: '7' },
    cases: { type: 'string', default: Object.keys(CASES).join(',') },
    loader: { type: 'string', default: 'tsx' },
    'node-flags': { type: 'string', default: '' },
  },
);
const nodeFlags = values['node-flags']!.split(' ').filter(Boolean);
/** What `--import` loads TypeScript with in `root`: tsx's entry, or a loader file of the checkout. */
const loaderIn = (root: string): string => (values.loader === 'tsx' ? 'tsx' : join(root, values.loader!));
const runs = Number(values.runs);
const cases = values.cases!.split(',') as CaseName[];
for (const name of cases) if (!Object.hasOwn(CASES, name)) throw new Error(`unknown case ${name}`);
const checkouts = positionals.length === 0 ? [ROOT] : positionals;
const PRELOAD = benchPath('lib/cpu-at-exit.mjs');
const scratch = mkdtempSync(join(tmpdir(), 'mpd-cli-start-'));
const installed = values.installed === true;
// The module host case has no installed form: left out.
if (installed && cases.includes('module-host-ready')) cases.splice(cases.indexOf('module-host-ready'), 1);

/** A one-module pipeline, as a user's `pipeline.ts` beside the installed packages. */
const USER_PIPELINE = `import { defineModule, definePipeline } from '@mpd/pipeline';
export const hello = defineModule({ name: 'hello', run: async () => ({ greeting: 'hello' }) });
export default definePipeline({ name: 'start', modules: [hello] });
`;

/**
 * `--installed`: each checkout's packages packed and installed with npm into a directory of
 * their own (under the scratch directory), with {@link USER_PIPELINE} as its `pipeline.ts`.
 */
const installs = new Map<string, string>();
if (installed) {
  for (const [index, root] of checkouts.entries()) {
    execFileSync('pnpm', ['pack:all'], { cwd: root, stdio: 'ignore' });
    const dir = join(scratch, `installed-${index}`);
    mkdirSync(join(dir, 'vendor'), { recursive: true });
    const tarballs = readdirSync(join(root, 'dist-packages')).filter((file) => file.endsWith('.tgz'));
    for (const file of tarballs) copyFileSync(join(root, 'dist-packages', file), join(dir, 'vendor', file));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    writeFileSync(join(dir, 'pipeline.ts'), USER_PIPELINE);
    execFileSync('npm', ['install', '--no-audit', '--no-fund', ...tarballs.map((file) => `./vendor/${file}`)], {
      cwd: dir,
      stdio: 'ignore',
    });
    installs.set(root, dir);
  }
}

/**
 * One module host of `root` started (by this bench's `lib/host-start.ts`, under tsx): its CPU (ms)
 * when ready, `ready` as its code.
 */
function hostStart(root: string, env: NodeJS.ProcessEnv): Promise<{ cpuMs: number; code: string }> {
  const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', benchPath('lib/host-start.ts'), root], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('close', (code) => {
      const line = stdout.split('\n').find((text) => text.startsWith('{'));
      if (code !== 0 || line === undefined) reject(new Error(`module host of ${root}: exit ${code}: ${stderr}`));
      else resolve({ cpuMs: (JSON.parse(line) as { cpuMs: number }).cpuMs, code: 'ready' });
    });
  });
}

/** The orchestrator the `*-registered` cases register with (a registry: no pipeline), started by the first. */
let registry: { process: BenchProcess; url: string } | undefined;
async function registryUrl(): Promise<string> {
  if (registry === undefined) {
    const started = startBenchOrchestrator('', {});
    registry = { process: started, url: await started.listeningUrl(60_000) };
  }
  return registry.url;
}

/**
 * What a started server is read at: its `listening on` line, or for a `*-registered` case its
 * log line saying it registered (pino's JSON on stderr).
 */
const readAt = (name: CaseName): RegExp =>
  name.endsWith('-registered') ? /"msg":"registered with the orchestrator"/ : /listening on/;

/**
 * One start of `name` from `root`: its CPU (ms) and exit code (`listening` for a server read at
 * its line, `registered` for one read once it registered).
 */
async function start(root: string, name: CaseName, index: number): Promise<{ cpuMs: number; code: string }> {
  const { command, args, serves } = CASES[name];
  const orchestrator = args.includes('ORCHESTRATOR' as never) ? await registryUrl() : undefined;
  const cpuFile = join(scratch, `${index}.json`);
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('MPD_') && key !== 'INIT_CWD'),
  );
  if (command === 'host') return hostStart(root, env);
  const dir = installs.get(root);
  const pipeline = dir === undefined ? join(root, 'bench/pipelines/bench.pipeline.ts') : join(dir, 'pipeline.ts');
  const commandArgs = (args as readonly string[]).map((arg) =>
    arg === 'PIPELINE' ? pipeline : arg === 'ORCHESTRATOR' ? orchestrator! : arg === 'ID' ? `start-${index}` : arg,
  );
  const entry =
    dir === undefined
      ? ['--import', loaderIn(root), join(root, `packages/${command}/src/cli/main.ts`), ...commandArgs]
      : [join(dir, 'node_modules/@mpd/cli/dist/main.js'), command, ...commandArgs];
  const child = spawn(process.execPath, [...nodeFlags, '--import', PRELOAD, ...entry], {
    cwd: dir ?? root,
    // The bench pipeline (from a checkout) of one module; the installed one reads no variable.
    env: {
      ...env,
      ...dagEnv({ shape: 'wide', size: 1, seed: 1, minMs: 0, maxMs: 0 }),
      XMPD_CPU_AT_EXIT: cpuFile,
      ...(orchestrator === undefined ? {} : { MPD_JOIN_TOKEN: JOIN_TOKEN }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    let read: number | undefined;
    const at = readAt(name);
    const check = (text: string): void => {
      if (serves && read === undefined && at.test(text)) {
        // A registered worker: its module host's (it registers once its hosts loaded the pipeline) too.
        read = threadsCpuMs(child.pid!) + (name.endsWith('-registered') ? descendantsCpuMs(child.pid!) : 0);
        process.kill(-child.pid!, 'SIGKILL');
      }
    };
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      check(stdout);
    });
    child.stderr!.on('data', () => check(stderr));
    child.on('close', (code) => {
      if (serves) {
        if (read === undefined) reject(new Error(`${name} in ${root} exited ${code} before ${at.source}: ${stderr}`));
        else resolve({ cpuMs: read, code: name.endsWith('-registered') ? 'registered' : 'listening' });
        return;
      }
      try {
        const line = JSON.parse(readFileSync(cpuFile, 'utf8')) as { code: number; cpuUs: number };
        resolve({ cpuMs: line.cpuUs / 1_000, code: String(code) });
      } catch (error) {
        reject(new Error(`${name} in ${root}: no CPU written (${String(error)}); stderr: ${stderr}`));
      }
    });
  });
}

const loads = (): string =>
  loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');
process.stdout.write(
  `load average ${loads()}; ${runs} runs of ${cases.length} cases, checkouts alternating; ${installed ? `installed (npm), node ${nodeFlags.join(' ')} …/@mpd/cli/dist/main.js` : `node ${[...nodeFlags, '--import', values.loader].join(' ')}`}\n`,
);
const results = new Map<string, { cpuMs: number; code: string }[]>();
let index = 0;
try {
  // A start of each first (not counted): tsx's cache holds each checkout's files before any counted run.
  for (const root of checkouts) for (const name of cases) await start(root, name, index++);
  for (let run = 0; run < runs; run++) {
    for (const name of cases) {
      for (let step = 0; step < checkouts.length; step++) {
        const root = checkouts[(run + step) % checkouts.length]!;
        const key = `${name} ${root}`;
        results.set(key, [...(results.get(key) ?? []), await start(root, name, index++)]);
      }
    }
  }
} finally {
  await registry?.process.stop();
  rmSync(scratch, { recursive: true, force: true });
}
for (const name of cases) {
  for (const root of checkouts) {
    const figures = results.get(`${name} ${root}`)!;
    const cpu = figures.map((figure) => figure.cpuMs);
    const codes = [...new Set(figures.map((figure) => figure.code))].join('/');
    process.stdout.write(
      `${name.padEnd(26)} ${root.padEnd(16)} CPU ${median(cpu).toFixed(0).padStart(5)} ms (${Math.min(...cpu).toFixed(0)}–${Math.max(...cpu).toFixed(0)}), exit ${codes}\n`,
    );
  }
}
process.stdout.write(`load average ${loads()} at the end\n`);
