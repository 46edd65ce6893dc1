import { execFileSync } from 'node:child_process';
import { testNodeFlags } from './node-flags.js';

/** What of a pipeline hashes its modules' code: its fingerprint and its modules' digests. */
export interface TsxLoadedDigests {
  /** `Pipeline.fingerprint` as tsx loads the file. */
  fingerprint: string;
  /** `Pipeline.moduleDigest` as tsx loads the file. @throws RangeError for a module not in it. */
  moduleDigest: (moduleName: string) => string;
}

/**
 * The fingerprint and the module digests of the pipeline file `file` as a module host (or the
 * CLI) gets them: loaded with tsx's loader in a process of its own. Both hash the modules' code
 * as loaded, and vitest transforms a file otherwise than tsx: a worker started in a test with
 * the pipeline vitest loaded takes these instead (`{ ...pipeline, ...asTsxLoads(file) }`), or
 * its module hosts refuse each module as changed since the worker loaded the file.
 * `@mpd/pipeline` is resolved from `cwd` (the calling package's directory).
 */
export function asTsxLoads(file: string, cwd: string = process.cwd()): TsxLoadedDigests {
  const script = [
    `import { loadPipelineFile } from '@mpd/pipeline';`,
    `const pipeline = await loadPipelineFile(${JSON.stringify(file)});`,
    `const digests = Object.fromEntries([...pipeline.modules.keys()].map((name) => [name, pipeline.moduleDigest(name)]));`,
    `console.log(JSON.stringify({ fingerprint: pipeline.fingerprint, digests }));`,
  ].join('\n');
  const printed = execFileSync(
    process.execPath,
    [...testNodeFlags(), '--import', 'tsx', '--input-type=module', '-e', script],
    {
      cwd,
      encoding: 'utf8',
    },
  );
  const { fingerprint, digests } = JSON.parse(printed) as { fingerprint: string; digests: Record<string, string> };
  return {
    fingerprint,
    moduleDigest: (moduleName) => {
      const digest = Object.hasOwn(digests, moduleName) ? digests[moduleName] : undefined;
      if (digest === undefined) throw new RangeError(`Pipeline file ${file} has no module '${moduleName}'`);
      return digest;
    },
  };
}
