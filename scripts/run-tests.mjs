#!/usr/bin/env node
/**
 * `pnpm test`: typechecks and tests every project through nx, then prints one closing
 * line for the whole suite, `tests: N passed, N failed, N skipped`, summed from the JSON
 * report each project's vitest run writes to `.vitest/report.json`. Exits with nx's code (the
 * first non-zero one).
 *
 * Two lanes (CI has 2 cores: as many tasks at once as nx's `--parallel=2` ran), the longest
 * projects first: nx 24 orders its queue by how many tasks and projects depend on a task, then
 * by task history a clean clone has not got, so it ran every typecheck first and the
 * integration tests (no dependants; the longest project, about 10 of CI's 13 minutes) last,
 * starting about 190 s in. Here each entry of `LONGEST_FIRST`, then all other projects
 * together, is one `nx run-many -t typecheck test` (nx still runs each project's typecheck
 * before its tests, and caches them), started in that order whenever a lane is free.
 * Extra arguments go to nx instead (e.g. `pnpm test --projects=@mpd/worker`): one run, nx's order.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const projectDirs = ['packages', 'apps', 'tests'].flatMap((group) =>
  readdirSync(join(root, group), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(root, group, entry.name)),
);
const reportOf = (dir) => join(dir, '.vitest', 'report.json');
for (const dir of projectDirs) rmSync(reportOf(dir), { force: true });

/**
 * The projects that take longest, longest first (wall seconds of tests on CI's last clean run,
 * `/tmp/cleanP2`, 2026-12-02: integration 581, worker 375, install 239, orchestrator 112, cli
 * 38; every other project under 25). Each runs alone in a lane; a project not named here runs
 * in the last group, with the others.
 */
const LONGEST_FIRST = ['@mpd/integration-tests', '@mpd/worker', '@mpd/install-tests', '@mpd/orchestrator', '@mpd/cli'];
const LANES = 2;
const NX = ['exec', 'nx', 'run-many', '-t', 'typecheck', 'test', '--outputStyle=stream'];

/** The nx runs under way: a SIGTERM or SIGINT to this script (a cancelled CI job) reaches them. */
const children = new Set();
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    for (const child of children) child.kill(signal);
    process.exit(128 + (signal === 'SIGTERM' ? 15 : 2));
  });
}

/** Runs `pnpm exec nx run-many … args`; resolves with its exit code. */
const nx = (args) =>
  new Promise((done) => {
    const child = spawn('pnpm', [...NX, ...args], { cwd: root, stdio: 'inherit' });
    children.add(child);
    child.on('error', () => done(1));
    child.on('close', (code) => {
      children.delete(child);
      done(code ?? 1);
    });
  });

let code = 0;
if (process.argv.length > 2) {
  code = await nx(['--parallel=2', ...process.argv.slice(2)]);
} else {
  // nx's own list of projects; also made before the lanes start, so that two nx processes never
  // make nx's project graph and database (.nx/workspace-data) at the same moment on a clean clone.
  const shown = spawnSync('pnpm', ['exec', 'nx', 'show', 'projects', '--json'], { cwd: root, encoding: 'utf8' });
  if (shown.status !== 0) {
    process.stderr.write(`${shown.stdout}${shown.stderr}`);
    process.exit(shown.status ?? 1);
  }
  const names = JSON.parse(shown.stdout);
  const rest = names.filter((name) => !LONGEST_FIRST.includes(name));
  const queue = [
    ...LONGEST_FIRST.filter((name) => names.includes(name)).map((name) => [`--projects=${name}`]),
    ...(rest.length > 0 ? [[`--projects=${rest.join(',')}`]] : []),
  ];
  await Promise.all(
    Array.from({ length: LANES }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const status = await nx(['--parallel=1', ...next]);
        if (code === 0) code = status;
      }
    }),
  );
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
console.log(`\ntests: ${passed} passed, ${failures} failed, ${skipped} skipped`);
// A typecheck that failed, or a project whose tests never ran, fails the run without a failed
// test to count: say so under the line rather than leave "0 failed" as the last word.
if (code !== 0 && failures === 0)
  console.log(`nx failed (exit code ${code}): a typecheck or a project's run failed; see above`);
process.exit(code !== 0 ? code : failures > 0 ? 1 : passed === 0 ? 1 : 0);
