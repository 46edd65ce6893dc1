#!/usr/bin/env node
/**
 * `node scripts/typecheck-all.mjs [--list]`: type-checks every project of the workspace as its own
 * `typecheck` script (`tsc --noEmit -p tsconfig.json`) would, but in ONE TypeScript program: each
 * source file is parsed and checked once, not once per project that imports it. Exits 1 on any
 * type error in any project (printed as `tsc` prints it), 0 otherwise; with `--list`, prints each
 * project's files count and the program's instead of checking.
 *
 * Why: in the workspace every package's imports of the others resolve to their `src/*.ts`
 * (`exports` → `./src/*.ts`), so the twelve `tsc --noEmit` runs re-checked the shared sources in
 * each (the integration tests' program holds nearly the whole repository): 168 CPU-s for the
 * twelve (2 at a time: 91 s wall) against 32 CPU-s for the one program (21 s wall), on 2 cores at
 * load 6–12 (docs/round-x/x4.md). `pnpm test`
 * (scripts/run-tests.mjs) runs this beside the tests instead of nx's twelve `typecheck` targets.
 *
 * The projects: every directory under `packages/`, `apps/` and `tests/` whose `package.json` has a
 * `typecheck` script of the form `tsc --noEmit -p <config>`; its files and options are that config's
 * (read with TypeScript's own parser, `extends` and all). Projects whose options differ (other than
 * the config's own path) are checked in one program per distinct set of options, so that every
 * file is checked with its project's options. Diagnostics as `tsc --noEmit` reports them: options,
 * syntax, global and semantic ones (no declaration-emit ones: nothing is emitted).
 *
 * One program shares its ambient declarations (`declare module`, `declare global`) across the
 * projects it holds: a `.d.ts` of one project could satisfy another's import that its own
 * `tsc -p` would refuse. Today the only one is `tests/integration/types/path-to-regexp.d.ts`, and
 * only the integration tests import `path-to-regexp`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const ts = createRequire(join(root, 'package.json'))('typescript');
const listOnly = process.argv.includes('--list');

/** `tsc --noEmit -p <config>` (the one form of `typecheck` script this reads); `null` otherwise. */
const TYPECHECK_SCRIPT = /^tsc --noEmit -p (\S+)$/;

/** Fails the script with `message`. */
function fail(message) {
  process.stderr.write(`typecheck-all: ${message}\n`);
  process.exit(1);
}

/** The compiler's diagnostics as `tsc` prints them (colour and context on a terminal). */
function format(diagnostics) {
  const host = {
    getCanonicalFileName: (name) => name,
    getCurrentDirectory: () => root,
    getNewLine: () => '\n',
  };
  return process.stdout.isTTY
    ? ts.formatDiagnosticsWithColorAndContext(diagnostics, host)
    : ts.formatDiagnostics(diagnostics, host);
}

const projects = ['packages', 'apps', 'tests']
  .flatMap((group) =>
    readdirSync(join(root, group), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => join(root, group, entry.name)),
  )
  .filter((dir) => existsSync(join(dir, 'package.json')))
  .map((dir) => ({ dir, manifest: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) }))
  .filter(({ manifest }) => manifest.scripts?.typecheck !== undefined)
  .map(({ dir, manifest }) => {
    const script = TYPECHECK_SCRIPT.exec(manifest.scripts.typecheck.trim());
    if (!script)
      fail(
        `${manifest.name}'s typecheck script is "${manifest.scripts.typecheck}": this script reads only "tsc --noEmit -p <config>"`,
      );
    const parsed = ts.getParsedCommandLineOfConfigFile(
      join(dir, script[1]),
      {},
      {
        ...ts.sys,
        onUnRecoverableConfigFileDiagnostic: (diagnostic) => fail(format([diagnostic])),
      },
    );
    if (parsed.errors.length > 0) fail(format(parsed.errors));
    return { name: manifest.name, parsed };
  });
if (projects.length === 0) fail('no project has a typecheck script');

/** The options of a project's program that decide how its files check (not where its config is). */
const checkedOptions = (options) =>
  JSON.stringify(
    Object.entries({ ...options, noEmit: true })
      .filter(([key]) => !['configFilePath', 'pathsBasePath'].includes(key))
      .sort(([a], [b]) => (a < b ? -1 : 1)),
  );
const programs = new Map();
for (const project of projects) {
  const key = checkedOptions(project.parsed.options);
  const program = programs.get(key) ?? { options: project.parsed.options, projects: [], files: new Set() };
  program.projects.push(project);
  for (const file of project.parsed.fileNames) program.files.add(file);
  programs.set(key, program);
}

let errors = 0;
for (const { options, projects: members, files } of programs.values()) {
  if (listOnly) {
    for (const { name, parsed } of members) console.log(`${name}: ${parsed.fileNames.length} files`);
    console.log(`one program: ${files.size} root files (${members.map(({ name }) => name).join(', ')})`);
    continue;
  }
  const program = ts.createProgram({
    rootNames: [...files],
    options: { ...options, noEmit: true, configFilePath: undefined },
  });
  // What `tsc --noEmit` reports, in its order: a syntax error hides the rest, as there.
  let diagnostics = [...program.getOptionsDiagnostics(), ...program.getSyntacticDiagnostics()];
  if (diagnostics.length === 0) diagnostics = [...program.getGlobalDiagnostics(), ...program.getSemanticDiagnostics()];
  if (diagnostics.length === 0) continue;
  errors += diagnostics.length;
  process.stdout.write(format(ts.sortAndDeduplicateDiagnostics(diagnostics)));
  const where = new Set(
    diagnostics.flatMap(({ file }) =>
      file ? members.filter(({ parsed }) => parsed.fileNames.includes(file.fileName)).map(({ name }) => name) : [],
    ),
  );
  if (where.size > 0) process.stdout.write(`\nin ${[...where].sort().join(', ')}\n`);
}
if (errors > 0) {
  process.stdout.write(`\ntypecheck-all: ${errors} error${errors === 1 ? '' : 's'}\n`);
  process.exit(1);
}
if (!listOnly) console.log(`typecheck-all: ${projects.length} projects, no type errors`);
