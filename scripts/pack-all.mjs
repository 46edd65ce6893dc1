#!/usr/bin/env node
/**
 * `pnpm pack:all [DIR]`: builds every publishable package and packs each with `pnpm pack` into
 * DIR (default `dist-packages/` at the root), as a registry would receive it: `publishConfig`'s
 * `exports` and `bin` (the built `dist/`), `workspace:*` turned into the version. The publishable
 * packages are those under `packages/` without `"private": true`. Prints the tarballs' absolute
 * paths, one a line; with `--json`, one object `{ "<package name>": "<tarball>" }` instead.
 *
 * Each tarball holds the root's `LICENSE`. Each package's `dist/` is removed and built again with `tsc -p tsconfig.build.json` (no nx:
 * this script runs inside `pnpm test`'s nx run, and a stale file of a renamed source must not
 * ship). Two at a time (CI has 2 cores); the order does not matter, since in the workspace every
 * package's imports of the others resolve to their sources.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const json = args.includes('--json');
const destination = resolve(args.find((arg) => !arg.startsWith('--')) ?? join(root, 'dist-packages'));
const tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
const PARALLEL = 2;

const packages = readdirSync(join(root, 'packages'), { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => join(root, 'packages', entry.name))
  .map((dir) => ({ dir, manifest: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) }))
  .filter(({ manifest }) => manifest.private !== true);

/** Fails the script with the command's output. */
function fail(what, output) {
  process.stderr.write(`${output}\npack-all: ${what} failed\n`);
  process.exit(1);
}

/** Builds one package's dist/ from scratch; resolves once done, exits the script on failure. */
function build({ dir, manifest }) {
  rmSync(join(dir, 'dist'), { recursive: true, force: true });
  return new Promise((done) => {
    const child = spawn(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: dir, stdio: 'pipe' });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('close', (code) => (code === 0 ? done() : fail(`building ${manifest.name}`, output)));
  });
}

const queue = [...packages];
await Promise.all(
  Array.from({ length: PARALLEL }, async () => {
    for (let next = queue.shift(); next; next = queue.shift()) await build(next);
  }),
);

mkdirSync(destination, { recursive: true });
const tarballs = {};
for (const { dir, manifest } of packages) {
  // The root's LICENSE ships in every tarball (npm takes it from the package's own directory);
  // copied for the pack only, so that the repository keeps one copy.
  const license = join(dir, 'LICENSE');
  const copied = !existsSync(license);
  if (copied) copyFileSync(join(root, 'LICENSE'), license);
  let packed;
  try {
    packed = spawnSync('pnpm', ['pack', '--pack-destination', destination], { cwd: dir, encoding: 'utf8' });
  } finally {
    if (copied) rmSync(license, { force: true });
  }
  if (packed.status !== 0) fail(`pnpm pack of ${manifest.name}`, `${packed.stdout}${packed.stderr}`);
  // pnpm pack prints the tarball's path as its last line.
  tarballs[manifest.name] = resolve(dir, packed.stdout.trim().split('\n').at(-1));
}
process.stdout.write(json ? `${JSON.stringify(tarballs)}\n` : `${Object.values(tarballs).join('\n')}\n`);
