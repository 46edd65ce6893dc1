/**
 * What the processes of a run spent their busy time on, by activity, from their V8 CPU profiles
 * (`--cpu-prof`): the table "Profiles, before and after" in docs/performance.md (issue 14). Each sample
 * goes to the first activity of {@link ACTIVITIES}, in that order, that any frame of its stack
 * matches (so a log line written inside the `execute` route counts as logs, not as incoming
 * HTTP; the module host hop inside it as the hop); samples no activity matches are "other".
 * Busy time: every sample but `(idle)` (wall time the thread was not idle: a main thread blocked
 * on tsx's loader thread counts). The table is of the processes' main threads, as the earlier
 * tables were; the other threads (Node 20 runs tsx's loader hooks on a thread of their own,
 * which writes a profile too) are given as one line of busy ms per role. Role: a process with
 * the module host's entry on a stack is a module host, else its directory names it
 * (`cli-orchestrator-…`, `cli-worker-…`).
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber?: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** One activity: its row's label and whether a frame belongs to it. */
interface Activity {
  label: string;
  matches: (frame: CallFrame) => boolean;
}

const inUrl =
  (...parts: string[]) =>
  (frame: CallFrame): boolean =>
    parts.some((part) => frame.url.includes(part));
const named =
  (...names: string[]) =>
  (frame: CallFrame): boolean =>
    names.includes(frame.functionName);

/** The activities, in the order a sample is matched against them (see the file's comment). */
export const ACTIVITIES: readonly Activity[] = [
  { label: 'garbage collection', matches: named('(garbage collector)') },
  {
    label: "loading the CLI and the pipeline (tsx, node's module loader, `definePipeline`)",
    matches: (frame) =>
      inUrl('/node_modules/tsx/', '/node_modules/esbuild/', '/node_modules/get-tsconfig/')(frame) ||
      inUrl('node:internal/modules/')(frame) ||
      inUrl('/packages/pipeline/src/')(frame),
  },
  {
    label: "the module host hop (IPC both ways, the end marks on the host's pipes)",
    matches: inUrl(
      '/executor/module-host',
      '/executor/hosted-execution.ts',
      '/executor/host-protocol.ts',
      'node:internal/child_process',
    ),
  },
  { label: 'the output shipper and its call', matches: inUrl('/registration/output-shipper.ts') },
  {
    label: 'logs, progress, report',
    matches: inUrl(
      '/node_modules/pino',
      '/node_modules/sonic-boom/',
      '/node_modules/thread-stream/',
      '/cli/progress.ts',
      '/runner/run-report.ts',
      '/runner/summary.ts',
    ),
  },
  {
    label: "outgoing HTTP: undici and ts-rest's client (orchestrator: `execute`; worker: heartbeats)",
    matches: inUrl('/node_modules/undici/', '/packages/client/src/', '/@ts-rest/core/'),
  },
  {
    label: "incoming HTTP: node's `http`, express, body-parser, ts-rest, zod, the routes",
    matches: (frame) =>
      inUrl(
        'node:_http_',
        '/node_modules/express/',
        '/node_modules/body-parser/',
        '/node_modules/raw-body/',
        '/node_modules/router/',
        '/node_modules/@ts-rest/express/',
        '/node_modules/zod/',
        '/src/http/',
      )(frame) || /\/packages\/(orchestrator|worker)\/src\/app\.ts/.test(frame.url),
  },
  { label: 'runner bookkeeping', matches: inUrl('/packages/orchestrator/src/runner/') },
];

const OTHER = 'other (node internals, timers, the event loop)';

/** Per activity label (and `OTHER`), µs of busy time. */
type Tally = Map<string, number>;

/** Tallies one profile file by activity; `isHost` when the module host's entry is on a stack. */
function tallyProfile(path: string): { tally: Tally; own: Tally; isHost: boolean } {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const activityOf = new Map<number, string | null>();
  const classify = (id: number): string | null => {
    const known = activityOf.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id)!;
    if (node.callFrame.functionName === '(idle)') {
      activityOf.set(id, null);
      return null;
    }
    const stack: CallFrame[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) stack.push(byId.get(at)!.callFrame);
    const activity = ACTIVITIES.find((candidate) => stack.some(candidate.matches));
    const label = activity?.label ?? OTHER;
    activityOf.set(id, label);
    return label;
  };
  const tally: Tally = new Map();
  // The part of each activity whose sampled frame (the leaf: self time) is mpd's own code.
  const own: Tally = new Map();
  profile.samples.forEach((id, index) => {
    const label = classify(id);
    if (label === null) return;
    const micros = profile.timeDeltas[index] ?? 0;
    tally.set(label, (tally.get(label) ?? 0) + micros);
    const frame = byId.get(id)!.callFrame;
    if (ownerOf(frame.url, frame.functionName) === 'mpd') own.set(label, (own.get(label) ?? 0) + micros);
  });
  const isHost = profile.nodes.some((node) => node.callFrame.url.includes('/executor/module-host-main'));
  return { tally, own, isHost };
}

/**
 * The table of busy-time shares by activity, one column per role, for `files` (each with the
 * process it belongs to: its threads are summed, and a process is a host if any of its threads is).
 * Each cell is the activity's share and, in brackets, the part of it whose sampled frame (self
 * time) is mpd's own code ({@link ownerOf}): the rest is libraries, node and V8.
 * @returns the table as text (markdown), with each role's process count and main threads' busy
 *   time in ms, then the other threads' busy time
 */
export function activityShares(files: readonly { process: string; mainThread: boolean; path: string }[]): string {
  const processes = new Map<string, { tally: Tally; own: Tally; otherThreads: number; isHost: boolean }>();
  for (const file of files) {
    const { tally, own, isHost } = tallyProfile(file.path);
    const entry = processes.get(file.process) ?? { tally: new Map(), own: new Map(), otherThreads: 0, isHost: false };
    if (file.mainThread) {
      addTally(entry.tally, tally);
      addTally(entry.own, own);
    } else entry.otherThreads += sum(tally);
    entry.isHost ||= isHost;
    processes.set(file.process, entry);
  }
  const roles = new Map<string, { tally: Tally; own: Tally; otherThreads: number; count: number }>();
  for (const [name, { tally, own, otherThreads, isHost }] of processes) {
    const role = isHost ? 'module hosts' : name.includes('orchestrator') ? 'orchestrator' : 'workers';
    const entry = roles.get(role) ?? { tally: new Map(), own: new Map(), otherThreads: 0, count: 0 };
    addTally(entry.tally, tally);
    addTally(entry.own, own);
    entry.otherThreads += otherThreads;
    entry.count++;
    roles.set(role, entry);
  }
  const order = ['orchestrator', 'workers', 'module hosts'].filter((role) => roles.has(role));
  const busy = (role: string) => sum(roles.get(role)!.tally);
  const lines = [
    `| Activity | ${order.map((role) => `${role} (${roles.get(role)!.count}: ${(busy(role) / 1_000).toFixed(0)} ms busy)`).join(' | ')} |`,
    `|---|${order.map(() => '---').join('|')}|`,
  ];
  for (const label of [...ACTIVITIES.map((activity) => activity.label), OTHER]) {
    const cells = order.map((role) => {
      const micros = roles.get(role)!.tally.get(label) ?? 0;
      const own = roles.get(role)!.own.get(label) ?? 0;
      const percent = (part: number): string => `${((part / busy(role)) * 100).toFixed(1)} %`;
      return micros === 0 ? '' : `${percent(micros)} (own ${percent(own)})`;
    });
    lines.push(`| ${label} | ${cells.join(' | ')} |`);
  }
  const others = order.map((role) => `${role} ${(roles.get(role)!.otherThreads / 1_000).toFixed(0)} ms`);
  return `${lines.join('\n')}\n\nbusy time of the other threads (not in the table): ${others.join(', ')}\n`;
}

const sum = (tally: Tally): number => [...tally.values()].reduce((a, b) => a + b, 0);

function addTally(into: Tally, from: Tally): void {
  for (const [label, micros] of from) into.set(label, (into.get(label) ?? 0) + micros);
}

/**
 * Whose code a frame is (round X, issue 14): `mpd` for the workspace's own sources
 * (`/packages/…/src/`, `/bench/`), a library by its package name (under `node_modules`; tsx and
 * esbuild included), `node` for node's own JavaScript (`node:…`), and `native` for frames
 * without a script (V8's builtins, the garbage collector, `(program)`).
 */
export function ownerOf(url: string, functionName: string): string {
  if (functionName === '(garbage collector)') return 'native: garbage collection';
  if (url === '') return 'native: V8 and node builtins, (program)';
  if (url.startsWith('node:')) return "node's own JavaScript";
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return `library: ${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!}`;
  }
  return 'mpd';
}

/**
 * Self time of the main threads by owner ({@link ownerOf}), one column per role (as
 * {@link activityShares}), and each role's largest places of mpd's own code (self time per
 * function, as a share of the role's busy time): where own code could still be cut.
 * @param top how many of mpd's functions to list per role
 */
export function ownerShares(files: readonly { process: string; mainThread: boolean; path: string }[], top = 8): string {
  type Role = { busy: number; owners: Map<string, number>; own: Map<string, number>; processes: Set<string> };
  const hostProcesses = new Set<string>();
  const parsed = files
    .filter((file) => file.mainThread)
    .map((file) => {
      const profile = JSON.parse(readFileSync(file.path, 'utf8')) as Profile;
      if (profile.nodes.some((node) => node.callFrame.url.includes('/executor/module-host-main')))
        hostProcesses.add(file.process);
      return { file, profile };
    });
  const roles = new Map<string, Role>();
  for (const { file, profile } of parsed) {
    const role = hostProcesses.has(file.process)
      ? 'module hosts'
      : file.process.includes('orchestrator')
        ? 'orchestrator'
        : 'workers';
    const entry = roles.get(role) ?? { busy: 0, owners: new Map(), own: new Map(), processes: new Set() };
    entry.processes.add(file.process);
    roles.set(role, entry);
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    profile.samples.forEach((id, index) => {
      const frame = byId.get(id)!.callFrame;
      if (frame.functionName === '(idle)') return;
      const micros = profile.timeDeltas[index] ?? 0;
      entry.busy += micros;
      const owner = ownerOf(frame.url, frame.functionName);
      entry.owners.set(owner, (entry.owners.get(owner) ?? 0) + micros);
      if (owner === 'mpd') {
        const place = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*\/(packages|bench)\//, '$1/')}:${(frame.lineNumber ?? -1) + 1}`;
        entry.own.set(place, (entry.own.get(place) ?? 0) + micros);
      }
    });
  }
  const order = ['orchestrator', 'workers', 'module hosts'].filter((role) => roles.has(role));
  const share = (micros: number, role: string): string =>
    micros === 0 ? '' : `${((micros / roles.get(role)!.busy) * 100).toFixed(1)} %`;
  const owners = new Map<string, number>();
  for (const role of order)
    for (const [owner, micros] of roles.get(role)!.owners) owners.set(owner, (owners.get(owner) ?? 0) + micros);
  const lines = [
    `| Self time by owner (main threads) | ${order.map((role) => `${role} (${roles.get(role)!.processes.size}: ${(roles.get(role)!.busy / 1_000).toFixed(0)} ms busy)`).join(' | ')} |`,
    `|---|${order.map(() => '---').join('|')}|`,
  ];
  for (const [owner] of [...owners].sort((a, b) => b[1] - a[1])) {
    const cells = order.map((role) => share(roles.get(role)!.owners.get(owner) ?? 0, role));
    if (cells.every((cell) => cell === '' || Number.parseFloat(cell) < 0.3)) continue;
    lines.push(`| ${owner} | ${cells.join(' | ')} |`);
  }
  lines.push('', "mpd's own code, the largest places by self time (share of the role's busy main threads):");
  for (const role of order) {
    const own = [...roles.get(role)!.own].sort((a, b) => b[1] - a[1]).slice(0, top);
    lines.push(`- ${role}: ${own.map(([place, micros]) => `${place} ${share(micros, role)}`).join('; ')}`);
  }
  return `${lines.join('\n')}\n`;
}
