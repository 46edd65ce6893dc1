import { execFileSync } from 'node:child_process';
import { testNodeFlags } from './processes.js';

/**
 * The fingerprint of the pipeline file `file` as a module host (or the CLI) gets it: loaded
 * with tsx's loader in a process of its own. A pipeline's fingerprint hashes its modules' code
 * as loaded, and vitest transforms a file otherwise than tsx: a worker started in a test with
 * the pipeline vitest loaded takes this fingerprint instead, or its module hosts refuse the
 * file as changed. `@mpd/pipeline` is resolved from `cwd` (the calling package's directory).
 */
export function fingerprintAsTsxLoads(file: string, cwd: string = process.cwd()): string {
  const script = `import { loadPipelineFile } from '@mpd/pipeline'; console.log((await loadPipelineFile(${JSON.stringify(file)})).fingerprint);`;
  return execFileSync(process.execPath, [...testNodeFlags(), '--import', 'tsx', '--input-type=module', '-e', script], {
    cwd,
    encoding: 'utf8',
  }).trim();
}
