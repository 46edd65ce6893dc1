import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PipelineLoadError } from './errors.js';
import { isPipeline, type Pipeline } from './pipeline.js';

/**
 * Loads a pipeline file: an ES module whose default export is `definePipeline(...)`.
 * A `.ts` file loads when the process runs under a TypeScript loader such as `tsx`
 * (the `mpd-orchestrator` and `mpd-worker` commands do). The pipeline returned records the
 * file's absolute path as its `sourceFile` (a copy of the exported pipeline: the export itself is
 * frozen), so that a worker's module hosts can load the same file.
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
  return Object.freeze({ ...candidate, sourceFile: path });
}
