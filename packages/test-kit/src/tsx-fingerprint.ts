import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
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
 *
 * Memoized per process by {@link tsxLoadsKey} (the file's path, `cwd` and the SHA-256 of the
 * file's content): a tsx process costs about a CPU-second, and the test files sharing a fork
 * (`isolate: false`) ask for the same fixture again. A file edited since is loaded anew; a file it
 * imports is not part of the key (fixtures change between runs, not within one).
 */
export function asTsxLoads(file: string, cwd: string = process.cwd()): TsxLoadedDigests {
  const key = tsxLoadsKey(file, cwd);
  let loaded = tsxLoaded.get(key);
  if (loaded === undefined) {
    loaded = tsxLoad(file, cwd);
    tsxLoaded.set(key, loaded);
  }
  return loaded;
}

/** What {@link asTsxLoads} got, by {@link tsxLoadsKey}, in this process. */
const tsxLoaded = new Map<string, TsxLoadedDigests>();

/**
 * The key {@link asTsxLoads} memoizes by: `file` and `cwd` resolved, and the SHA-256 (hex) of
 * `file`'s content as it reads now. @throws the `readFileSync` error for a file it cannot read.
 */
export function tsxLoadsKey(file: string, cwd: string = process.cwd()): string {
  const content = createHash('sha256')
    .update(readFileSync(resolve(cwd, file)))
    .digest('hex');
  return JSON.stringify([resolve(cwd, file), resolve(cwd), content]);
}

function tsxLoad(file: string, cwd: string): TsxLoadedDigests {
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
