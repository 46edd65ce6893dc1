#!/usr/bin/env node
/**
 * `pnpm pack:all [DIR] [--json] [--no-build | --no-check]`: builds every publishable package and packs each
 * into DIR (default `dist-packages/` at the root), as a registry would receive it:
 * `publishConfig`'s `exports` and `bin` (the built `dist/`), `workspace:*` turned into the
 * version, dependencies in name order; the same commit packed twice gives the same bytes. The publishable
 * packages are those under `packages/` without `"private": true`. Prints the tarballs' absolute
 * paths, one a line; with `--json`, one object `{ "<package name>": "<tarball>" }` instead.
 *
 * Each tarball holds the root's `LICENSE`. Unless `--no-build`, each package's `dist/` is removed
 * and built again from its `tsconfig.build.json` (no nx: this script runs inside `pnpm test`'s nx
 * run, and a stale file of a renamed source must not ship): all packages in ONE TypeScript
 * program, type-checked once, each output written to its own package's `outDir` (see
 * `buildAll`). A build per package (`tsc -p`) checked every workspace dependency's sources again
 * in each, since in the workspace every package's imports of the others resolve to their sources:
 * about 80 s of CPU for the seven, against about 20 s for the one program.
 *
 * `--no-check` builds without type-checking (TypeScript's `noCheck`: the same JS, maps and
 * declarations, about half the CPU; declaration-emit errors still fail it) for a caller that has
 * checked the same sources already: `pnpm test` does (scripts/typecheck-all.mjs), and its install
 * test packs with this. A release packs without it.
 */
import { spawnSync } from 'node:child_process';
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
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const json = args.includes('--json');
const noCheck = args.includes('--no-check');
const destination = resolve(args.find((arg) => !arg.startsWith('--')) ?? join(root, 'dist-packages'));
const ts = createRequire(join(root, 'package.json'))('typescript');

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

/** The compiler options that may differ between the packages' `tsconfig.build.json`s. */
const PER_PACKAGE_OPTIONS = ['outDir', 'rootDir', 'configFilePath', 'pathsBasePath'];

/**
 * Builds every package's `dist/` from scratch as `tsc -p tsconfig.build.json` in its directory
 * would (the same files, options, JS, source maps and declarations), but as one program: each
 * source file is parsed and checked once, not once per package that imports it. The program's
 * `rootDir` is `packages/` and its `outDir` a directory never written: each output is written
 * to its package's own `outDir` instead, and each source map's `sources` made relative to where
 * the map really lands (`../src/x.ts`, as `tsc -p` writes them). Every package's build options
 * must be the same but for `outDir` and `rootDir`; exits the script on a type error or a
 * package whose options differ. With `--no-check`, only syntax errors and declaration-emit errors
 * fail it (the types are not checked).
 */
function buildAll() {
  const builds = packages.map(({ dir, manifest }) => {
    const parsed = ts.getParsedCommandLineOfConfigFile(
      join(dir, 'tsconfig.build.json'),
      {},
      {
        ...ts.sys,
        onUnRecoverableConfigFileDiagnostic: (diagnostic) =>
          fail(`reading ${manifest.name}'s tsconfig.build.json`, format([diagnostic])),
      },
    );
    if (parsed.errors.length > 0) fail(`reading ${manifest.name}'s tsconfig.build.json`, format(parsed.errors));
    const { outDir, rootDir } = parsed.options;
    if (!outDir || !rootDir) fail(`reading ${manifest.name}'s tsconfig.build.json`, 'it sets no outDir or rootDir');
    return { dir, manifest, parsed, outDir: resolve(outDir), rootDir: resolve(rootDir) };
  });
  const shared = (options) =>
    JSON.stringify(
      Object.entries(options)
        .filter(([key]) => !PER_PACKAGE_OPTIONS.includes(key))
        .sort(),
    );
  for (const build of builds) {
    if (shared(build.parsed.options) !== shared(builds[0].parsed.options))
      fail(
        `building ${build.manifest.name}`,
        `its tsconfig.build.json sets other compiler options than ${builds[0].manifest.name}'s (other than ${PER_PACKAGE_OPTIONS.join(', ')}): one program builds them all`,
      );
  }
  for (const { dir } of builds) rmSync(join(dir, 'dist'), { recursive: true, force: true });
  const programOut = join(root, 'packages', '.pack-all-never-written');
  const program = ts.createProgram({
    rootNames: builds.flatMap(({ parsed }) => parsed.fileNames),
    options: {
      ...builds[0].parsed.options,
      rootDir: join(root, 'packages'),
      outDir: programOut,
      configFilePath: undefined,
      noCheck,
    },
  });
  const diagnostics = noCheck
    ? [...program.getOptionsDiagnostics(), ...program.getSyntacticDiagnostics()]
    : ts.getPreEmitDiagnostics(program);
  if (diagnostics.length > 0) fail('building the packages', format(diagnostics));
  /** Where `tsc -p` in the package would have written the program's output `file`. */
  const realPath = (file) => {
    const source = join(root, 'packages', relative(programOut, file));
    const build = builds.find(({ rootDir }) => source.startsWith(rootDir + sep));
    if (!build) fail('building the packages', `${file}: no package's rootDir holds it`);
    return join(build.outDir, relative(build.rootDir, source));
  };
  const emitted = program.emit(undefined, (file, text) => {
    const target = realPath(file);
    if (target.endsWith('.map')) {
      const map = JSON.parse(text);
      map.sources = map.sources.map((source) =>
        relative(dirname(target), resolve(dirname(file), source))
          .split(sep)
          .join('/'),
      );
      text = JSON.stringify(map);
    }
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, text);
  });
  if (emitted.emitSkipped || emitted.diagnostics.length > 0) fail('building the packages', format(emitted.diagnostics));
}

/** The compiler's diagnostics as `tsc` prints them. */
function format(diagnostics) {
  return ts.formatDiagnostics(diagnostics, {
    getCanonicalFileName: (name) => name,
    getCurrentDirectory: () => root,
    getNewLine: () => '\n',
  });
}

if (!args.includes('--no-build')) buildAll();

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

// A copy of each package with its published manifest and the root's LICENSE (npm takes it from
// the package's own directory), all packed by one `npm pack` (one npm start, not seven), which
// applies each one's `files` and gives every entry the same time.
const staging = mkdtempSync(join(tmpdir(), 'mpd-pack-'));
const tarballs = {};
try {
  const copies = packages.map(({ dir, manifest }) => {
    const copy = join(staging, manifest.name.replace(/^@/, '').replace('/', '-'));
    cpSync(dir, copy, {
      recursive: true,
      filter: (source) => !/[\\/](node_modules|\.vitest)$/.test(source),
    });
    writeFileSync(join(copy, 'package.json'), `${JSON.stringify(publishedManifest(manifest), null, 2)}\n`);
    if (!existsSync(join(copy, 'LICENSE'))) copyFileSync(join(root, 'LICENSE'), join(copy, 'LICENSE'));
    return copy;
  });
  const packed = spawnSync('npm', ['pack', '--json', '--pack-destination', destination, ...copies], {
    cwd: staging,
    encoding: 'utf8',
  });
  if (packed.status !== 0) fail('npm pack', `${packed.stdout}${packed.stderr}`);
  for (const { name, filename } of JSON.parse(packed.stdout)) {
    if (!(name in versions)) fail('npm pack', `it packed ${name}, which is not a publishable package`);
    tarballs[name] = join(destination, filename);
  }
  const missing = packages.filter(({ manifest }) => !tarballs[manifest.name]);
  if (missing.length > 0) fail('npm pack', `no tarball of ${missing.map(({ manifest }) => manifest.name).join(', ')}`);
} finally {
  rmSync(staging, { recursive: true, force: true });
}
process.stdout.write(json ? `${JSON.stringify(tarballs)}\n` : `${Object.values(tarballs).join('\n')}\n`);
