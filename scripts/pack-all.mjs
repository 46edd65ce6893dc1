#!/usr/bin/env node
/**
 * `pnpm pack:all [DIR] [--json] [--no-build]`: builds every publishable package and packs each
 * into DIR (default `dist-packages/` at the root), as a registry would receive it:
 * `publishConfig`'s `exports` and `bin` (the built `dist/`), `workspace:*` turned into the
 * version, dependencies in name order; the same commit packed twice gives the same bytes. The publishable
 * packages are those under `packages/` without `"private": true`. Prints the tarballs' absolute
 * paths, one a line; with `--json`, one object `{ "<package name>": "<tarball>" }` instead.
 *
 * Each tarball holds the root's `LICENSE`. Unless `--no-build`, each package's `dist/` is removed and built again with `tsc -p tsconfig.build.json` (no nx:
 * this script runs inside `pnpm test`'s nx run, and a stale file of a renamed source must not
 * ship). Two at a time (CI has 2 cores); the order does not matter, since in the workspace every
 * package's imports of the others resolve to their sources.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
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

const queue = args.includes('--no-build') ? [] : [...packages];
await Promise.all(
  Array.from({ length: PARALLEL }, async () => {
    for (let next = queue.shift(); next; next = queue.shift()) await build(next);
  }),
);

mkdirSync(destination, { recursive: true });
const versions = Object.fromEntries(packages.map(({ manifest }) => [manifest.name, manifest.version]));

/**
 * The manifest as a registry gets it: `publishConfig`'s fields (`exports`, `bin`) in place of the
 * workspace's, `workspace:` ranges turned into the versions, dependencies in name order, no
 * devDependencies (the private test kit is nobody's business). Written by us rather than by
 * `pnpm pack`, which wrote the dependencies in another order now and then (1 pack in 6), so that
 * packing the same commit twice gives the same tarball bytes (a lockfile checks them).
 */
function publishedManifest(manifest) {
  const { publishConfig = {}, devDependencies: _dev, ...rest } = manifest;
  const published = { ...rest, ...publishConfig };
  for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies']) {
    if (!published[field]) continue;
    published[field] = Object.fromEntries(
      Object.keys(published[field])
        .sort()
        .map((name) => {
          const range = published[field][name];
          if (!range.startsWith('workspace:')) return [name, range];
          if (!versions[name])
            fail(`packing ${manifest.name}`, `${name} is not a publishable package of the workspace`);
          return [name, versions[name]];
        }),
    );
  }
  return published;
}

const tarballs = {};
for (const { dir, manifest } of packages) {
  // A copy of the package with its published manifest and the root's LICENSE (npm takes it from
  // the package's own directory), packed with `npm pack`, which applies `files` and gives every
  // entry the same time.
  const staging = mkdtempSync(join(tmpdir(), 'mpd-pack-'));
  try {
    cpSync(dir, staging, {
      recursive: true,
      filter: (source) => !/[\\/](node_modules|\.vitest)$/.test(source),
    });
    writeFileSync(join(staging, 'package.json'), `${JSON.stringify(publishedManifest(manifest), null, 2)}\n`);
    if (!existsSync(join(staging, 'LICENSE'))) copyFileSync(join(root, 'LICENSE'), join(staging, 'LICENSE'));
    const packed = spawnSync('npm', ['pack', '--json', '--pack-destination', destination], {
      cwd: staging,
      encoding: 'utf8',
    });
    if (packed.status !== 0) fail(`npm pack of ${manifest.name}`, `${packed.stdout}${packed.stderr}`);
    tarballs[manifest.name] = join(destination, JSON.parse(packed.stdout)[0].filename);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
process.stdout.write(json ? `${JSON.stringify(tarballs)}\n` : `${Object.values(tarballs).join('\n')}\n`);
