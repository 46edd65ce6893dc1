import { execFile, execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { promisify } from 'node:util';
import { type RunningProcess, type SpawnOptions, spawnProcess } from './processes.js';

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
  /** Starts `node --import tsx script` inside the namespace ({@link spawnProcess} through `ip netns exec`). */
  spawn(options: SpawnOptions): RunningProcess;
  /** Drops every packet into and out of the namespace, from now on (existing connections included). */
  cut(): Promise<void>;
  /** Lets packets through again. */
  heal(): Promise<void>;
  /** Deletes the namespace and its veth pair (idempotent; processes inside lose their network). */
  destroy(): Promise<void>;
}

/** The namespaces created and not yet destroyed, for {@link destroyNetworkNamespaces} and the exit hook. */
const live = new Set<NetworkNamespace>();
/** Host-side interface names of {@link live}, deleted synchronously if the process exits first. */
const hostInterfaces = new Map<NetworkNamespace, string>();
let exitHook = false;

/**
 * Why network namespaces cannot be used here (not root, no `ip` or `iptables`), as a sentence
 * for a skip message; `undefined` when they can.
 */
export function networkNamespacesUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root (run as root, as .ci/run does)';
  for (const tool of ['ip', 'iptables']) {
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
      hostInterfaces.delete(namespace);
      // Deleting one end deletes the pair; the namespace's own deletion would do it too, but later.
      await ip('link', 'del', hostSide).catch(() => undefined);
      await ip('netns', 'del', name).catch(() => undefined);
    },
  };
  live.add(namespace);
  hostInterfaces.set(namespace, hostSide);
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
    for (const [namespace, hostSide] of hostInterfaces) {
      for (const args of [
        ['link', 'del', hostSide],
        ['netns', 'del', namespace.name],
      ]) {
        try {
          execFileSync('ip', args, { stdio: 'ignore' });
        } catch {
          // Already gone.
        }
      }
    }
  });
}
