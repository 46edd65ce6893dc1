import { execFile, execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { environmentFor, type RunningProcess, type SpawnOptions, spawnProcess } from './processes.js';

const run = promisify(execFile);

/**
 * A network namespace of its own for processes a test cuts off: a veth pair joins it to the
 * test's namespace, on a /30 of 10.213.0.0/16 (`hostAddress` outside, `address` inside).
 * {@link NetworkNamespace.cut} drops every packet crossing the pair (iptables rules inside the
 * namespace, so nothing of the machine's own firewall is touched) until
 * {@link NetworkNamespace.heal}: a partition, without a process noticing anything but silence.
 */
export interface NetworkNamespace {
  /** The namespace's name (`mpd-<random>`), unique on the machine. */
  readonly name: string;
  /** The address of the namespace's end of the pair: processes inside listen here. */
  readonly address: string;
  /** The address of the test's end of the pair: processes outside listen here to be reachable from inside. */
  readonly hostAddress: string;
  /** Starts `node --import <tsx-loader.mjs> script` inside the namespace ({@link spawnProcess} through `ip netns exec`). */
  spawn(options: SpawnOptions): RunningProcess;
  /** Drops every packet into and out of the namespace, from now on (existing connections included). */
  cut(): Promise<void>;
  /** Lets packets through again. */
  heal(): Promise<void>;
  /** Deletes the namespace and its veth pair (idempotent; processes inside lose their network). */
  destroy(): Promise<void>;
}

/** The namespaces created and not yet destroyed, for {@link destroyNetworkNamespaces}. */
const live = new Set<NetworkNamespace>();
/**
 * What to delete synchronously if the process exits before the tests' own clean-up (a crash, a
 * signal): one function per namespace or network not yet destroyed.
 */
const exitCleanups = new Set<() => void>();
let exitHook = false;

/** `ip ARGS` now, ignoring failures (already gone): for the exit hook, where nothing may wait. */
const ipNow = (...args: string[]): void => {
  try {
    execFileSync('ip', args, { stdio: 'ignore' });
  } catch {
    // Already gone.
  }
};

/**
 * Why network namespaces cannot be used here (not root, no `ip` or `iptables`), as a sentence
 * for a skip message; `undefined` when they can.
 * @param tools the commands the test needs. @default ['ip', 'iptables'] ({@link NetworkNamespace.cut} needs iptables; {@link createNamespaceNetwork} only ip)
 */
export function networkNamespacesUnavailable(
  tools: readonly ('ip' | 'iptables')[] = ['ip', 'iptables'],
): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root (run as root, as .ci/run does)';
  for (const tool of tools) {
    try {
      execFileSync(tool, ['-V'], { stdio: 'ignore' });
    } catch {
      return `network namespaces need \`${tool}\` (apt-get install -y ${tool === 'ip' ? 'iproute2' : 'iptables'})`;
    }
  }
  return undefined;
}

/**
 * Creates a network namespace with a veth pair to this one and addresses on both ends. Always
 * pair it with {@link destroyNetworkNamespaces} in `afterEach`/`afterAll` (a process exit deletes
 * what is left too). Names and addresses are random and checked free, so two test runs on one
 * machine do not meet.
 * @throws Error when `ip` fails (not root, no `iproute2`): check {@link networkNamespacesUnavailable} first.
 */
export async function createNetworkNamespace(): Promise<NetworkNamespace> {
  installExitHook();
  const suffix = randomBytes(3).toString('hex');
  const name = `mpd-${suffix}`;
  // Interface names: at most 15 characters.
  const hostSide = `mpv${suffix}h`;
  const inside = `mpv${suffix}n`;
  const { hostAddress, address } = await freeSubnet();
  const ip = (...args: string[]) => run('ip', args);
  const inNamespace = (command: string, ...args: string[]) => run('ip', ['netns', 'exec', name, command, ...args]);
  const rules = [
    ['INPUT', '-i', inside, '-j', 'DROP'],
    ['OUTPUT', '-o', inside, '-j', 'DROP'],
  ];
  let cut = false;
  let destroyed = false;

  const namespace: NetworkNamespace = {
    name,
    address,
    hostAddress,
    spawn: (options) => spawnProcess({ ...options, command: ['ip', 'netns', 'exec', name] }),
    async cut() {
      if (cut) return;
      for (const rule of rules) await inNamespace('iptables', '-A', ...rule);
      cut = true;
    },
    async heal() {
      if (!cut) return;
      for (const rule of rules) await inNamespace('iptables', '-D', ...rule);
      cut = false;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      live.delete(namespace);
      exitCleanups.delete(deleteNow);
      // Deleting one end deletes the pair; the namespace's own deletion would do it too, but later.
      await ip('link', 'del', hostSide).catch(() => undefined);
      await ip('netns', 'del', name).catch(() => undefined);
    },
  };
  const deleteNow = (): void => {
    ipNow('link', 'del', hostSide);
    ipNow('netns', 'del', name);
  };
  live.add(namespace);
  exitCleanups.add(deleteNow);
  try {
    await ip('netns', 'add', name);
    await ip('link', 'add', hostSide, 'type', 'veth', 'peer', 'name', inside);
    await ip('link', 'set', inside, 'netns', name);
    await ip('addr', 'add', `${hostAddress}/30`, 'dev', hostSide);
    await ip('link', 'set', hostSide, 'up');
    await inNamespace('ip', 'addr', 'add', `${address}/30`, 'dev', inside);
    await inNamespace('ip', 'link', 'set', inside, 'up');
    await inNamespace('ip', 'link', 'set', 'lo', 'up');
  } catch (error) {
    await namespace.destroy();
    throw error;
  }
  return namespace;
}

/** Destroys every namespace {@link createNetworkNamespace} made that is still there. */
export async function destroyNetworkNamespaces(): Promise<void> {
  await Promise.all([...live].map((namespace) => namespace.destroy()));
}

/**
 * One host of a {@link NamespaceNetwork}: a network namespace with one interface (`eth0`) on the
 * network and its own loopback, like a container on a compose network.
 */
export interface NetworkHost {
  /** The name the other hosts reach it by (every host's `/etc/hosts` maps it to {@link address}). */
  readonly hostname: string;
  /** The network namespace's name (`mpdn-<random>-<n>`), unique on the machine. */
  readonly namespace: string;
  /** Its address on the network. */
  readonly address: string;
  /** Starts `node --import <tsx-loader.mjs> script` inside ({@link spawnProcess} through `ip netns exec`). */
  spawn(options: SpawnOptions): RunningProcess;
  /**
   * Runs `command` inside and resolves to its exit code (`null` when it was killed after
   * `timeoutMs`) and its output; never rejects. `env` and `cleanEnv` as {@link SpawnOptions}.
   */
  exec(
    command: readonly string[],
    options?: Pick<SpawnOptions, 'cwd' | 'env' | 'cleanEnv'> & { timeoutMs?: number },
  ): Promise<{ code: number | null; output: string }>;
  /** The ids of the processes inside (`ip netns pids`): those started there and every process they started. */
  pids(): Promise<number[]>;
}

/**
 * Network namespaces on one private network, one per host name: a bridge in a namespace of its
 * own joins a veth pair from each; each host's `/etc/netns/<namespace>/hosts` (which `ip netns
 * exec` mounts over `/etc/hosts`) maps every host name to its address, so the names resolve as
 * a compose network's service names do. Nothing is added to the test's own namespace (no
 * interface, route or firewall rule), so the network's subnet cannot clash with the machine's,
 * nor with another run's network beside it.
 */
export interface NamespaceNetwork {
  /** The network's subnet (`10.214.<random>.0/24`). */
  readonly subnet: string;
  /** The hosts, in the order of the names given. */
  readonly hosts: readonly NetworkHost[];
  /** The host of this name. @throws Error for a name not on the network. */
  host(hostname: string): NetworkHost;
  /**
   * SIGKILLs every process still inside, deletes the namespaces (their interfaces go with them)
   * and their `/etc/netns` directories. Idempotent; a process exit does the same.
   */
  destroy(): Promise<void>;
}

/**
 * Creates a {@link NamespaceNetwork} with a host for each name (at most 200; names as in
 * `/etc/hosts`). Pair it with `destroy()` in `afterAll`.
 * @throws Error when `ip` fails (not root, no `iproute2`): check {@link networkNamespacesUnavailable}`(['ip'])` first.
 */
export async function createNamespaceNetwork(hostnames: readonly string[]): Promise<NamespaceNetwork> {
  if (hostnames.length === 0 || hostnames.length > 200) throw new Error('a network needs 1 to 200 hosts');
  installExitHook();
  const prefix = `mpdn-${randomBytes(3).toString('hex')}`;
  const bridge = `${prefix}-sw`;
  const base = `10.214.${randomInt(256)}`;
  const hosts = hostnames.map((hostname, index) => ({
    hostname,
    namespace: `${prefix}-${index}`,
    address: `${base}.${index + 2}`,
  }));
  const namespaces = [bridge, ...hosts.map((host) => host.namespace)];
  const etcDir = (namespace: string) => `/etc/netns/${namespace}`;
  const ip = (...args: string[]) => run('ip', args);
  const pidsIn = async (namespace: string): Promise<number[]> => {
    const { stdout } = await run('ip', ['netns', 'pids', namespace]).catch(() => ({ stdout: '' }));
    return stdout.split('\n').filter(Boolean).map(Number);
  };
  let destroyed = false;

  const deleteNow = (): void => {
    for (const namespace of namespaces) {
      let pids = '';
      try {
        pids = execFileSync('ip', ['netns', 'pids', namespace], { encoding: 'utf8' });
      } catch {
        // No such namespace.
      }
      for (const pid of pids.split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // Gone meanwhile.
        }
      }
      ipNow('netns', 'del', namespace);
      rmSync(etcDir(namespace), { recursive: true, force: true });
    }
  };
  exitCleanups.add(deleteNow);

  const network: NamespaceNetwork = {
    subnet: `${base}.0/24`,
    hosts: hosts.map(({ hostname, namespace, address }) => ({
      hostname,
      namespace,
      address,
      spawn: (options) => spawnProcess({ ...options, command: ['ip', 'netns', 'exec', namespace] }),
      exec: (command, options = {}) =>
        new Promise((resolve) => {
          execFile(
            'ip',
            ['netns', 'exec', namespace, ...command],
            { cwd: options.cwd, env: environmentFor(options), timeout: options.timeoutMs, killSignal: 'SIGKILL' },
            (error, stdout, stderr) => {
              const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
              resolve({ code, output: `${stdout}${stderr}` });
            },
          );
        }),
      pids: () => pidsIn(namespace),
    })),
    host(hostname) {
      const found = this.hosts.find((host) => host.hostname === hostname);
      if (!found) throw new Error(`no host ${hostname} on the network (${hostnames.join(', ')})`);
      return found;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      // Kill until none is left: a process may start another while the first ones die.
      for (const namespace of namespaces) {
        for (let round = 0; round < 20; round++) {
          const pids = await pidsIn(namespace);
          if (pids.length === 0) break;
          for (const pid of pids) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              // Gone meanwhile.
            }
          }
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        await ip('netns', 'del', namespace).catch(() => undefined);
        rmSync(etcDir(namespace), { recursive: true, force: true });
      }
      exitCleanups.delete(deleteNow);
    },
  };

  const etcHosts = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost',
    ...hosts.map((host) => `${host.address}\t${host.hostname}`),
  ];
  try {
    await ip('netns', 'add', bridge);
    await ip('-n', bridge, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', bridge, 'link', 'set', 'br0', 'up');
    for (const [index, host] of hosts.entries()) {
      await ip('netns', 'add', host.namespace);
      // Both ends are named inside their own namespaces: no name is taken in the test's.
      await ip(
        '-n',
        bridge,
        'link',
        'add',
        `p${index}`,
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        host.namespace,
      );
      await ip('-n', bridge, 'link', 'set', `p${index}`, 'master', 'br0', 'up');
      await ip('-n', host.namespace, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0');
      await ip('-n', host.namespace, 'link', 'set', 'eth0', 'up');
      await ip('-n', host.namespace, 'link', 'set', 'lo', 'up');
      mkdirSync(etcDir(host.namespace), { recursive: true });
      writeFileSync(`${etcDir(host.namespace)}/hosts`, `${etcHosts.join('\n')}\n`);
    }
  } catch (error) {
    await network.destroy();
    throw error;
  }
  return network;
}

/** A /30 of 10.213.0.0/16 that no interface of this namespace uses yet. */
async function freeSubnet(): Promise<{ hostAddress: string; address: string }> {
  const { stdout } = await run('ip', ['-o', '-4', 'addr', 'show']);
  for (let tries = 0; tries < 100; tries++) {
    const base = `10.213.${randomInt(256)}.`;
    const last = randomInt(64) * 4;
    const hostAddress = `${base}${last + 1}`;
    if (!stdout.includes(` ${hostAddress}/`)) return { hostAddress, address: `${base}${last + 2}` };
  }
  throw new Error('no free /30 in 10.213.0.0/16 after 100 tries');
}

/** Deletes what is left when the test process exits without its `afterAll` (a crash, a signal). */
function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const cleanup of exitCleanups) cleanup();
  });
}
