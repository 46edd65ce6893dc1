/**
 * A Redis server for the BullMQ peer benchmark (issue 14): Debian's `redis-server`, installed
 * with `apt-get` when it is missing and the bench runs as root, started on a free loopback port
 * with persistence off (`--save ''`, `--appendonly no`: BullMQ's figures then do not pay for
 * disk writes, as the measurement was made), in its own process group, stopped with it.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processCpuMs, trackChild } from './processes.js';

/** A running Redis server. */
export interface RedisServer {
  port: number;
  pid: number;
  /** CPU time (user + system) it used so far, ms (from /proc). */
  cpuMs(): number;
  stop(): Promise<void>;
}

/** Why there is no Redis server: one line, printed instead of the peer's figures. */
export interface RedisUnavailable {
  unavailable: string;
}

const READY = /Ready to accept connections/;

function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/**
 * `redis-server`, installed from Debian's packages when it is missing and this process is root
 * with `apt-get` (the package lists are refreshed once if the first attempt fails).
 * @returns undefined when it is there, else why it cannot be had
 */
function ensureRedisServer(): string | undefined {
  if (onPath('redis-server')) return undefined;
  if (process.getuid?.() !== 0 || !onPath('apt-get')) {
    return 'redis-server is not installed (apt-get install redis-server, as root)';
  }
  process.stdout.write('  installing redis-server (Debian) for the BullMQ peer…\n');
  const install = (): boolean =>
    spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'redis-server'], {
      stdio: 'ignore',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    }).status === 0;
  if (!install()) {
    spawnSync('apt-get', ['update'], { stdio: 'ignore' });
    if (!install()) return 'apt-get install redis-server failed';
  }
  return onPath('redis-server') ? undefined : 'redis-server is still not on PATH after apt-get install';
}

/** A loopback port free now (Redis takes no port 0: the bench retries when another process took it meanwhile). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Starts one `redis-server`, resolving once it accepts connections. */
async function startOnce(port: number, dir: string): Promise<RedisServer> {
  const child: ChildProcess = spawn(
    'redis-server',
    [
      ...['--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'yes'],
      ...['--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'notice'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  trackChild(child);
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start within 10 s:\n${output}`)), 10_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (READY.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (${code}) before it was ready:\n${output}`));
    });
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    port,
    pid: child.pid!,
    cpuMs: () => processCpuMs(child.pid!),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      await exited;
    },
  };
}

/**
 * Starts Redis for a benchmark (see the file's comment), or says why it cannot.
 * @returns the server, or `{ unavailable }` with a one-line reason (never throws for a missing Redis)
 */
export async function startRedis(): Promise<RedisServer | RedisUnavailable> {
  const missing = ensureRedisServer();
  if (missing) return { unavailable: missing };
  const dir = mkdtempSync(join(tmpdir(), 'mpd-bench-redis-'));
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const server = await startOnce(await freePort(), dir);
      return {
        ...server,
        async stop() {
          await server.stop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (error) {
      lastError = error;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  return { unavailable: `redis-server did not start: ${(lastError as Error).message.split('\n')[0]}` };
}

/** The Redis server's version line (`redis-server --version`), for the results' notes. */
export function redisVersion(): string {
  try {
    return execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}
