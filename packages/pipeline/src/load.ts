import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
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
    throw new PipelineLoadError('ImportFailed', `Could not load pipeline file ${path}: ${reason}`, { cause });
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
