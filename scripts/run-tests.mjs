#!/usr/bin/env node
/**
 * `pnpm test`: type-checks every project and runs every project's tests, then prints one closing
 * line for the whole suite, `tests: N passed, N failed, N skipped`, summed from the JSON report
 * each project's vitest run writes to `.vitest/report.json`. Exits 1 if the typecheck or any
 * project's run failed (or nothing passed), 0 otherwise.
 *
 * Without arguments (CI, and the README's `pnpm test`), three things at once from the start:
 * - the typecheck, as ONE TypeScript program for all projects (scripts/typecheck-all.mjs: 32
 *   CPU-s where nx's twelve `tsc --noEmit` targets took 168, each re-checking the workspace
 *   sources it imports), beside the tests rather than before them (nx made every test
 *   wait ~80 s for the twelve);
 * - the projects' `test` scripts (`pnpm run test` in the project, as nx ran them), two at a time
 *   (CI has 2 cores, as nx's `--parallel=2`), the longest first ({@link LONGEST_FIRST}): nx 24
 *   orders tasks by their number of dependants, so it started the integration tests, the
 *   longest project with none, last (~200 s into the run), and the run ended with it alone.
 *   Each output line is prefixed with its project's name, as nx's `--outputStyle=stream` did.
 *
 * Round R ran two lanes of nx runs, longest first (the typechecks still in front), and measured
 * 15 min 38 s against 13 min 13 s for nx's order on one clean clone, the integration and worker
 * projects overlapping whole, as they do here: docs/round-x/x4.md has what this order was
 * measured against.
 *
 * With arguments, they go to one nx run as before: `nx run-many -t typecheck test --parallel=2
 * …args` (e.g. `pnpm test --projects=@mpd/worker`: nx's per-project typecheck, cached).
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const projectDirs = ['packages', 'apps', 'tests'].flatMap((group) =>
  readdirSync(join(root, group), { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(root, group, entry.name, 'package.json')))
    .map((entry) => join(root, group, entry.name)),
);
const reportOf = (dir) => join(dir, '.vitest', 'report.json');
/** When this run started: its wall time is printed above the closing line (the 8-minute budget on CI's 2 cores). */
const runStarted = Date.now();
for (const dir of projectDirs) rmSync(reportOf(dir), { force: true });

/**
 * The projects that run longest, longest first (per-project wall of the suite on a 2-core
 * machine, docs/round-x/x4.md); they start before the rest, which follow in name order. A
 * project missing here only starts later: no test is left out. A name no project has stops the
 * run at its start.
 */
const LONGEST_FIRST = [
  '@mpd/integration-tests',
  '@mpd/worker',
  '@mpd/install-tests',
  '@mpd/orchestrator',
  '@mpd/demo',
  '@mpd/cli',
  '@mpd/server-kit',
];
// A name here that no project has any more (renamed, removed) would only start that project
// last, unnoticed: stop at once instead.
{
  const names = new Set(projectDirs.map((dir) => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name));
  const stale = LONGEST_FIRST.filter((name) => !names.has(name));
  if (stale.length > 0) {
    console.error(`scripts/run-tests.mjs: LONGEST_FIRST names no project called ${stale.join(', ')}: update it`);
    process.exit(1);
  }
}
/** Projects' test runs at once (CI's 2 cores). */
const PARALLEL = 2;

/** The processes under way: a SIGTERM or SIGINT to this script (a cancelled CI job) reaches them. */
const children = new Set();
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    for (const child of children) {
      try {
        process.kill(-child.pid, signal);
      } catch {
        // Its group is gone already.
      }
    }
    process.exit(128 + (signal === 'SIGTERM' ? 15 : 2));
  });
}

/**
 * Runs `command args…` in `cwd`; resolves with its exit code (1 if it could not start or died of
 * a signal). With a `prefix`, each line of its output is written with it (stdout to stdout,
 * stderr to stderr); without, the output is inherited.
 */
const run = (command, args, { cwd = root, prefix } = {}) =>
  new Promise((done) => {
    // A process group of its own, so that a signal reaches the whole tree (pnpm, vitest, its forks).
    const child = spawn(command, args, { cwd, detached: true, stdio: prefix ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
    children.add(child);
    if (prefix) {
      for (const [from, to] of [
        [child.stdout, process.stdout],
        [child.stderr, process.stderr],
      ])
        createInterface({ input: from, crlfDelay: Infinity }).on('line', (line) => to.write(`${prefix}${line}\n`));
    }
    child.on('error', (error) => {
      process.stderr.write(`${prefix ?? ''}${command} did not start: ${error.message}\n`);
      children.delete(child);
      done(1);
    });
    // `close` waits for every holder of the child's pipes: a process the project's run left in its
    // group would hold the lane (and `pnpm test`) open. 5 s after the child exited, such a group is
    // killed, saying so (review R1 of round X).
    let closed = false;
    child.on('exit', () => {
      setTimeout(() => {
        if (closed) return;
        try {
          process.kill(-child.pid, 'SIGKILL');
          process.stderr.write(`${prefix ?? ''}processes left in its group 5 s after it exited: killed\n`);
        } catch {
          // The group is gone already.
        }
      }, 5_000).unref();
    });
    child.on('close', (code) => {
      closed = true;
      children.delete(child);
      done(code ?? 1);
    });
  });

/** `pnpm run test` of every project that has a test script, {@link PARALLEL} at once; the first failing exit code, or 0. */
async function testAll() {
  const projects = projectDirs
    .map((dir) => ({ dir, manifest: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) }))
    .filter(({ manifest }) => manifest.scripts?.test !== undefined)
    .map(({ dir, manifest }) => ({ dir, name: manifest.name }))
    .sort((a, b) => rank(a.name) - rank(b.name) || (a.name < b.name ? -1 : 1));
  const width = Math.max(...projects.map(({ name }) => name.length));
  const codes = [];
  const lane = async () => {
    for (let project = projects.shift(); project; project = projects.shift()) {
      const started = Date.now();
      console.log(`\n> ${project.name}: test (started)`);
      const code = await run('pnpm', ['run', 'test'], { cwd: project.dir, prefix: `${project.name.padEnd(width)}: ` });
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      console.log(`\n> ${project.name}: test ${code === 0 ? 'passed' : `failed (exit code ${code})`} in ${seconds} s`);
      codes.push(code);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, lane));
  return codes.find((code) => code !== 0) ?? 0;
}

/** Where `name` comes in {@link LONGEST_FIRST} (the projects not there after all of them). */
function rank(name) {
  const index = LONGEST_FIRST.indexOf(name);
  return index === -1 ? LONGEST_FIRST.length : index;
}

const args = process.argv.slice(2);
let code;
let typecheckCode = 0;
if (args.length > 0) {
  code = await run('pnpm', [
    'exec',
    'nx',
    'run-many',
    '-t',
    'typecheck',
    'test',
    '--outputStyle=stream',
    '--parallel=2',
    ...args,
  ]);
} else {
  const [typechecked, tested] = await Promise.all([
    run(process.execPath, [join(root, 'scripts/typecheck-all.mjs')], { prefix: 'typecheck: ' }),
    testAll(),
  ]);
  typecheckCode = typechecked;
  code = typechecked !== 0 ? typechecked : tested;
}

let passed = 0;
let failed = 0;
let skipped = 0;
let failedSuites = 0;
for (const dir of projectDirs) {
  const file = reportOf(dir);
  if (!existsSync(file)) continue;
  const report = JSON.parse(readFileSync(file, 'utf8'));
  passed += report.numPassedTests ?? 0;
  failed += report.numFailedTests ?? 0;
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  failedSuites += report.numFailedTestSuites ?? 0;
}
// A suite that failed to load counts as a failure even though none of its tests ran.
const failures = failed + (failed === 0 ? failedSuites : 0);
const wallSeconds = Math.round((Date.now() - runStarted) / 1000);
console.log(`\npnpm test took ${Math.floor(wallSeconds / 60)} min ${wallSeconds % 60} s (wall)`);
console.log(`tests: ${passed} passed, ${failures} failed, ${skipped} skipped`);
// A typecheck that failed, or a project whose tests never ran, fails the run without a failed
// test to count: say so under the line rather than leave "0 failed" as the last word.
if (typecheckCode !== 0) console.log('the typecheck failed: see the lines starting "typecheck:" above');
else if (code !== 0 && failures === 0)
  console.log(`a project's run failed (exit code ${code}) without a failed test to count; see above`);
process.exit(code !== 0 ? code : failures > 0 ? 1 : passed === 0 ? 1 : 0);
