#!/usr/bin/env node
/**
 * `pnpm test`: typechecks and tests every project through nx, then prints one closing
 * line for the whole suite, `tests: N passed, N failed, N skipped`, summed from the JSON
 * report each project's vitest run writes to `.vitest/report.json`. Exits with nx's code.
 * Extra arguments go to nx (e.g. `pnpm test --projects=@mpd/worker`).
 */
import { spawnSync } from 'node:child_process';
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

const nx = spawnSync(
  'pnpm',
  [
    'exec',
    'nx',
    'run-many',
    '-t',
    'typecheck',
    'test',
    '--parallel=2',
    '--outputStyle=stream',
    ...process.argv.slice(2),
  ],
  { cwd: root, stdio: 'inherit' },
);

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
const code = nx.status ?? 1;
process.exit(code !== 0 ? code : failures > 0 ? 1 : passed === 0 ? 1 : 0);
