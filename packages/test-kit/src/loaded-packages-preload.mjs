/**
 * Preloaded by `packagesLoadedBy` (loaded-packages.ts) through NODE_OPTIONS: when the process
 * exits, writes the files of every CommonJS module it loaded (`require.cache`'s keys: a package
 * `import`ed from an ES module, such as express or pino, is loaded by the CommonJS loader and
 * listed there too) as JSON to the file named by TEST_KIT_LOADED_MODULES_FILE.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const file = process.env.TEST_KIT_LOADED_MODULES_FILE;
if (file) {
  const require = createRequire(import.meta.url);
  process.on('exit', () => writeFileSync(file, JSON.stringify(Object.keys(require.cache))));
}
