import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PipelineLoadError } from './errors.js';
import { isPipeline, moduleDigests, type Pipeline } from './pipeline.js';

/**
 * Loads a pipeline file: an ES module whose default export is `definePipeline(...)`.
 * A `.ts` file loads when the process runs under a TypeScript loader such as `tsx`
 * (the `mpd-orchestrator` and `mpd-worker` commands do). The pipeline returned records the
 * file's absolute path as its `sourceFile` (a copy of the exported pipeline: the export itself is
 * frozen), so that a worker's module hosts can load the same file. The copy keeps the export's
 * properties as they are (its `fingerprint` is made when first read, not here), and gives a
 * pipeline made by a copy of this package without `moduleDigest` this copy's.
 */
export async function loadPipelineFile(file: string, cwd: string = process.cwd()): Promise<Pipeline> {
  const path = isAbsolute(file) ? file : resolve(cwd, file);
  if (!existsSync(path)) {
    throw new PipelineLoadError('FileNotFound', `Pipeline file not found: ${path}`);
  }
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new PipelineLoadError(
      'ImportFailed',
      `Could not load pipeline file ${path}: ${reason}${missingPackageHint(reason, path)}`,
      { cause },
    );
  }
  const candidate = isPipeline(loaded.default)
    ? loaded.default
    : isPipeline((loaded.default as Record<string, unknown> | undefined)?.default)
      ? ((loaded.default as Record<string, unknown>).default as Pipeline)
      : undefined;
  if (!candidate) {
    throw new PipelineLoadError(
      'NoPipelineExport',
      `Pipeline file ${path} must export a pipeline as its default export: export default definePipeline({ ... })`,
    );
  }
  // Not `{ ...candidate }`: a spread would read (so compute) the fingerprint, which a module host
  // never needs (issue 14).
  const properties: PropertyDescriptorMap = Object.getOwnPropertyDescriptors(candidate);
  properties.sourceFile = { value: path, enumerable: true };
  if (typeof candidate.moduleDigest !== 'function') {
    properties.moduleDigest = {
      value: moduleDigests(candidate.name, candidate.modules, candidate.dependencies),
      enumerable: true,
    };
  }
  return Object.freeze(Object.defineProperties({}, properties) as Pipeline);
}

/**
 * What to do about a package the pipeline file itself imports that node did not find from the
 * file's directory (node's `Cannot find package 'X' imported from FILE`, or the CommonJS
 * resolver's `Cannot find module 'X'` with FILE first in its `Require stack`, as tsx gives it;
 * FILE quoted under some loaders, vitest's): a
 * bare specifier resolves through the `node_modules` directories of the file's own directory and
 * its parents, not the command's. '' for any other failure, and for a package that another file
 * imports (a dependency's own dependency missing: node's message names that file, and installing
 * the package beside the pipeline would not mend it). A new user's walkthrough (round AE) put a
 * pipeline in /tmp and got only node's words.
 */
function missingPackageHint(reason: string, path: string): string {
  const found =
    /Cannot find (?:package|module) '([^']+)'(?: imported from '?([^'\n]+)'?|\nRequire stack:\n- ([^\n]+))?/.exec(
      reason,
    );
  const name = found?.[1];
  const importer = found?.[2] ?? found?.[3];
  if (name === undefined || importer !== path) return '';
  if (name.startsWith('.') || isAbsolute(name) || name.startsWith('file:')) return '';
  const packageName = name.startsWith('@') ? name.split('/').slice(0, 2).join('/') : name.split('/')[0]!;
  return (
    ` (node looks for '${packageName}' in the node_modules of ${dirname(path)} and of its parents:` +
    ` install it there, e.g. \`npm install ${packageName}\` in your project, or put the file in a directory that has it)`
  );
}
