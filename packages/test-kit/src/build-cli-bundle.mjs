/**
 * Builds one bundle of an mpd CLI for the tests ({@link cliBundle} in `cli-bundles.ts` runs this
 * file with node, synchronously): `node build-cli-bundle.mjs worker|orchestrator OUTFILE`.
 *
 * One ES module with everything the CLI imports in it (our packages' TypeScript and their
 * libraries, by esbuild, as tsx compiles each file), started by plain node: no tsx hooks thread
 * and one file to compile instead of ~1,000 to resolve and load, a third of a start's CPU
 * (`docs/performance.md`, "CLI starts in the tests"). `import.meta.url` in our own sources is
 * replaced by the source file's own URL, so the paths read against it (a package's
 * `package.json`, the worker's `module-host-main.ts` and its preload) are the sources' still.
 * The CLI registers tsx itself (`beforeLoad`, as `mpd` does) once its settings are valid, before
 * it loads a pipeline file: pipeline files load as under `--import tsx` (same code text, same
 * fingerprints: `packages/cli/test/tsx-loader.spec.ts`).
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const [command, outfile] = process.argv.slice(2);
if (!['worker', 'orchestrator'].includes(command ?? '') || !outfile) {
  process.stderr.write('usage: node build-cli-bundle.mjs worker|orchestrator OUTFILE\n');
  process.exit(2);
}
const packages = fileURLToPath(new URL('../../', import.meta.url));
const run = command === 'worker' ? 'worker/src/cli/run-worker-cli.ts' : 'orchestrator/src/cli/run-orchestrator-cli.ts';
const runName = command === 'worker' ? 'runWorkerCli' : 'runOrchestratorCli';
const tsxLoader = new URL('../../cli/tsx-loader.mjs', import.meta.url).href;

await build({
  stdin: {
    // What `src/cli/main.ts` does, with tsx registered by the CLI itself (its `beforeLoad`).
    contents: [
      `import { ${runName} } from ${JSON.stringify(packages + run)};`,
      `const tsxLoader = ${JSON.stringify(tsxLoader)};`,
      `await ${runName}(process.argv.slice(2), {`,
      `  cwd: process.env.INIT_CWD ?? process.cwd(),`,
      `  beforeLoad: async () => { await import(tsxLoader); },`,
      `});`,
    ].join('\n'),
    resolveDir: packages,
    sourcefile: `${command}-cli-bundle-entry.ts`,
    loader: 'ts',
  },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile,
  logLevel: 'error',
  // CommonJS libraries `require` node's modules at run time.
  banner: {
    js: "import { createRequire as __mpdCreateRequire } from 'node:module'; const require = __mpdCreateRequire(import.meta.url);",
  },
  plugins: [
    {
      name: 'source-urls',
      setup(builder) {
        builder.onLoad({ filter: /\/packages\/[^/]+\/src\/.*\.ts$/ }, async (args) => {
          const text = await readFile(args.path, 'utf8');
          const href = JSON.stringify(pathToFileURL(args.path).href);
          return { contents: text.replaceAll('import.meta.url', href), loader: 'ts' };
        });
      },
    },
  ],
});
