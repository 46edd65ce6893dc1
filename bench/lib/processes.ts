/** Starting the benchmarks' processes (orchestrator, workers, baselines) and talking to them. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cliOf } from '@mpd/test-kit';
import type { IpcAnswer, IpcRequest } from './ipc.js';
import { descendantsCpuMs, processCpuMs } from './proc-times.js';

export { clockTicks, descendantsCpuMs, liveChildren, processCpuMs, processTimes } from './proc-times.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const benchPath = (relative: string): string => fileURLToPath(new URL(`../${relative}`, import.meta.url));
export const ORCHESTRATOR_SERVER = benchPath('servers/orchestrator.ts');
/** The worker's CLI, found through the `bin` of its package.json. */
export const WORKER_CLI = cliOf('worker');
export const BENCH_PIPELINE = benchPath('pipelines/bench.pipeline.ts');

/** Throwaway tokens (the orchestrator wants at least 16 characters). */
export const JOIN_TOKEN = 'bench-join-token-0123456789abcdef';
export const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';
export const WORKER_TOKEN = 'bench-worker-token-0123456789abcdef';

const OUTPUT_KEPT = 64 * 1024;
const running = new Set<BenchProcess>();

/** A process started with `node --import tsx SCRIPT`, with an IPC channel and its output kept for errors. */
export class BenchProcess {
  readonly child: ChildProcess;
  private output = '';
  private stdoutText = '';
  /** The first {@link OUTPUT_KEPT} characters of stdout and stderr together, as they came. */
  private headText = '';
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    script: string,
    args: string[] = [],
    env: Record<string, string> = {},
    nodeArgs: string[] = [],
  ) {
    // Only what the bench sets: no MPD_* or INIT_CWD from the caller's shell.
    const inherited = Object.fromEntries(
      Object.entries(process.env).filter(
        ([key]) => (!key.startsWith('MPD_') || key === 'MPD_BENCH_LOG_LEVEL') && key !== 'INIT_CWD',
      ),
    );
    // `pnpm bench --cpu-prof` profiles every bench process (written when it exits).
    const profileDir = process.env.MPD_BENCH_CPU_PROF_DIR;
    // One directory per process: node writes one profile per thread (tsx's loader runs in its own).
    const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}/${name}-${Date.now()}`] : [];
    this.child = spawn(process.execPath, [...profile, ...nodeArgs, '--import', 'tsx', script, ...args], {
      cwd: ROOT,
      env: { ...inherited, ...env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    running.add(this);
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString()).slice(-OUTPUT_KEPT);
      if (this.headText.length < OUTPUT_KEPT) this.headText += chunk.toString();
    };
    this.child.stdout!.on('data', (chunk: Buffer) => {
      keep(chunk);
      if (this.stdoutText.length < OUTPUT_KEPT) this.stdoutText += chunk.toString();
    });
    this.child.stderr!.on('data', keep);
    this.child.on('message', (message: IpcAnswer) => {
      const waiter = this.waiting.get(message.id);
      if (!waiter) return;
      this.waiting.delete(message.id);
      if (message.ok) waiter.resolve(message.value);
      else waiter.reject(new Error(`${this.name}: ${message.error}`));
    });
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code) => {
        running.delete(this);
        for (const waiter of this.waiting.values()) {
          waiter.reject(new Error(`${this.name} exited (${code}) while a request was pending:\n${this.output}`));
        }
        this.waiting.clear();
        resolve(code);
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  /**
   * CPU time (user + system) the process used so far, in ms, from /proc; NaN where there is no
   * /proc. With `children`, that of its descendants too, over their whole lives so far (a worker's
   * module hosts, those that already exited included: see {@link descendantsCpuMs}).
   */
  cpuMs({ children = false }: { children?: boolean } = {}): number {
    const own = processCpuMs(this.pid);
    return children ? own + descendantsCpuMs(this.pid) : own;
  }

  /** The URL of the first stdout line saying `listening on URL`. */
  async listeningUrl(timeoutMs = 30_000): Promise<string> {
    return (await this.outputMatch(/listening on (http\S+)/, 'listen', timeoutMs, 'stdout'))[1]!;
  }

  /**
   * The first match of `pattern` in the process's output (the first 64 KiB of its stdout, or of
   * its stdout and stderr together), once it is there.
   * @throws (rejects) when `timeoutMs` passed or the process exited first, saying it did not `what` (a verb: `listen`)
   */
  outputMatch(
    pattern: RegExp,
    what: string,
    timeoutMs = 30_000,
    streams: 'stdout' | 'both' = 'both',
  ): Promise<RegExpExecArray> {
    const watched = streams === 'stdout' ? [this.child.stdout!] : [this.child.stdout!, this.child.stderr!];
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const match = pattern.exec(streams === 'stdout' ? this.stdoutText : this.headText);
        if (match) {
          for (const stream of watched) stream.off('data', check);
          clearTimeout(timer);
          resolve(match);
          return true;
        }
        return false;
      };
      const timer = setTimeout(
        () => reject(new Error(`${this.name} did not ${what} within ${timeoutMs} ms:\n${this.output}`)),
        timeoutMs,
      );
      if (check()) return;
      for (const stream of watched) stream.on('data', check);
      void this.exited.then((code) => {
        if (!check()) {
          clearTimeout(timer);
          reject(new Error(`${this.name} exited (${code}) and did not ${what}:\n${this.output}`));
        }
      });
    });
  }

  /** Sends an IPC request to a bench server and resolves with its answer. */
  request<T>(type: string, payload?: unknown): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send({ id, type, payload } satisfies IpcRequest);
    });
  }

  recentOutput(): string {
    return this.output;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** CPU time of several processes together, with their child processes (module hosts), ms. */
export const cpuMsOf = (processes: readonly BenchProcess[]): number =>
  processes.reduce((total, process) => total + process.cpuMs({ children: true }), 0);

/** Other processes the bench started in their own process group (Redis), killed by {@link killAll} too. */
const groups = new Set<ChildProcess>();

/** Makes {@link killAll} kill `child`'s process group (it was spawned `detached`) until it exits. */
export function trackChild(child: ChildProcess): void {
  groups.add(child);
  child.once('exit', () => groups.delete(child));
}

/** Kills every bench process still running (on a crash or Ctrl-C of the driver). */
export function killAll(): void {
  for (const process of running) process.child.kill('SIGKILL');
  for (const child of groups) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Starts a worker with the real CLI, registering with `orchestratorUrl` and loading the bench pipeline. */
export function startWorkerCli(options: {
  id: string;
  orchestratorUrl: string;
  /** The worker's `--slots`. */
  slots: number;
  env: Record<string, string>;
  logLevel?: string;
  /** The worker's `--isolation`. @default the worker's: module hosts (`process`) for the bench pipeline file */
  isolation?: 'process' | 'none';
  /** The pipeline file. @default BENCH_PIPELINE */
  pipeline?: string;
  /** More flags (e.g. `--tags`, `--cache-dir`). */
  extraArgs?: string[];
}): BenchProcess {
  return new BenchProcess(
    options.id,
    WORKER_CLI,
    [
      ...['--port', '0', '--host', '127.0.0.1', '--id', options.id],
      ...['--orchestrator', options.orchestratorUrl, '--pipeline', options.pipeline ?? BENCH_PIPELINE],
      ...['--slots', String(options.slots), '--tools', 'node'],
      ...['--log-level', options.logLevel ?? process.env.MPD_BENCH_LOG_LEVEL ?? 'info'],
      ...(options.isolation ? ['--isolation', options.isolation] : []),
      ...(options.extraArgs ?? []),
    ],
    { ...options.env, MPD_JOIN_TOKEN: JOIN_TOKEN, MPD_WORKER_TOKEN: WORKER_TOKEN },
  );
}

/**
 * Starts the bench orchestrator (bench/servers/orchestrator.ts) with the bench's tokens, able to
 * run the pipeline file `pipeline`; `env` gives the pipeline's variables and the server's own
 * (MPD_BENCH_LOGS_DIR, MPD_BENCH_ARTIFACTS_DIR, …).
 */
export function startBenchOrchestrator(pipeline: string, env: Record<string, string>): BenchProcess {
  return new BenchProcess('orchestrator', ORCHESTRATOR_SERVER, [], {
    ...env,
    MPD_BENCH_PIPELINE: pipeline,
    MPD_BENCH_JOIN_TOKEN: JOIN_TOKEN,
    MPD_BENCH_ADMIN_TOKEN: ADMIN_TOKEN,
  });
}
