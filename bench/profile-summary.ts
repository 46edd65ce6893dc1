/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, or `pnpm bench --cpu-prof`): the functions
 * with the most self time, and self time per package or source directory.
 *
 *   tsx bench/profile-summary.ts bench/profiles/orchestrator-….cpuprofile [--top 25]
 *
 * `--activities DIR…` sums the profiles of whole processes instead (the directories
 * `--cpu-prof` of `cli-compare.ts` or `pnpm bench` writes, one per process started by the
 * bench; a worker's module hosts write theirs into the worker's) and prints each role's busy
 * time (orchestrator, workers, module hosts) by activity: see {@link ACTIVITIES}; then the same
 * busy time by owner (mpd's own code, each library, node's JavaScript, native) and each role's
 * largest places of mpd's own code (`ownerShares`).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { activityShares, ownerShares } from './lib/profile-activities.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

// Piped into `head` (or anything that stops reading): its end of the pipe closed, the rest of the
// summary has no reader. Exit quietly, as a Unix filter does, rather than die of an unhandled EPIPE.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

if (process.argv[2] === '--activities') {
  const dirs = process.argv.slice(3);
  if (dirs.length === 0) {
    process.stderr.write('usage: tsx bench/profile-summary.ts --activities DIR...\n');
    process.exit(2);
  }
  const files = dirs.flatMap((dir) =>
    readdirSync(dir)
      .filter((name) => name.endsWith('.cpuprofile'))
      // CPU.<date>.<time>.<pid>.<thread>.<sequence>.cpuprofile
      .map((name) => ({
        process: `${basename(dir)}/${name.split('.')[3]}`,
        mainThread: name.split('.')[4] === '0',
        path: join(dir, name),
      })),
  );
  process.stdout.write(activityShares(files));
  process.stdout.write(`\n${ownerShares(files)}`);
  process.exit(0);
}
const file = process.argv[2];
// `--help`, `-h` or any other flag in the file's place: the usage, not a stack trace of a missing file.
if (!file || file.startsWith('-')) {
  process.stderr.write('usage: tsx bench/profile-summary.ts FILE.cpuprofile [--top N] | --activities DIR...\n');
  process.exit(2);
}
const topIndex = process.argv.indexOf('--top');
const top = topIndex > 0 ? Number(process.argv[topIndex + 1]) : 25;
if (!Number.isInteger(top) || top < 1) {
  process.stderr.write(
    `--top must be a whole number of at least 1, got ${JSON.stringify(process.argv[topIndex + 1])}\n`,
  );
  process.exit(2);
}
if (!existsSync(file)) {
  process.stderr.write(`no such profile: ${file}\n`);
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;

const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const selfMicros = new Map<number, number>();
profile.samples.forEach((id, index) => {
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
});
const total = profile.endTime - profile.startTime;

/** `pkg` for node_modules files, `packages/x/src/...` for the workspace, `(node)` for node internals. */
function where(url: string): string {
  if (url === '') return '(native/vm)';
  if (url.startsWith('node:')) return '(node internals)';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const workspace = /\/(packages|apps|bench)\/(.*)$/.exec(url);
  return workspace ? `${workspace[1]}/${workspace[2]}` : url;
}

const byFunction = new Map<string, number>();
const byPlace = new Map<string, number>();
for (const [id, micros] of selfMicros) {
  const node = byId.get(id)!;
  const { functionName, url, lineNumber } = node.callFrame;
  const place = where(url);
  const key = `${functionName || '(anonymous)'}  ${place}${url ? `:${lineNumber + 1}` : ''}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
  const group = place.startsWith('packages/') || place.startsWith('bench/') ? place : place;
  byPlace.set(group, (byPlace.get(group) ?? 0) + micros);
}

const print = (title: string, entries: Map<string, number>): void => {
  process.stdout.write(`\n${title}\n`);
  for (const [key, micros] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(
      `${(micros / 1000).toFixed(1).padStart(9)} ms  ${((micros / total) * 100).toFixed(1).padStart(5)}%  ${key}\n`,
    );
  }
};
process.stdout.write(`${file}: ${(total / 1000).toFixed(0)} ms profiled\n`);
print('Self time by function', byFunction);
print('Self time by package or file', byPlace);
