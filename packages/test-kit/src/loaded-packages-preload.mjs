/**
 * Preloaded by `packagesLoadedBy` (loaded-packages.ts) through NODE_OPTIONS: when the process
 * exits, writes the files of every CommonJS module it loaded (`require.cache`'s keys: a package
 * `import`ed from an ES module, such as express or pino, is loaded by the CommonJS loader and
 * listed there too) as JSON to the file named by TEST_KIT_LOADED_MODULES_FILE; and registers
 * loaded-packages-hooks.mjs, which lists every ES module it resolves in that file's `.esm`
 * neighbour, one URL a line (review S3, round R: ES-module-only packages and our own sources
 * were not seen).
 */
import { writeFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

const file = process.env.TEST_KIT_LOADED_MODULES_FILE;
if (file) {
  const require = createRequire(import.meta.url);
  register('./loaded-packages-hooks.mjs', import.meta.url, { data: { file: `${file}.esm` } });
  process.on('exit', () => writeFileSync(file, JSON.stringify(Object.keys(require.cache))));
}
