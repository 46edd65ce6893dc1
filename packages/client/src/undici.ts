import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const require = createRequire(import.meta.url);
let loaded: typeof Undici | undefined;

/**
 * undici (CommonJS), loaded on first use rather than when `@mpd/client` is imported: a worker or
 * orchestrator start does not make a call before it listens, and undici's index loads ~110 files
 * (~0.2 CPU-s of a start on the round Z machine, round Z, Z3). The first call (or the first agent
 * made) pays it once per process. `require`, not `import()`: the fetcher's and the artifact
 * client's agents are made synchronously, as before; a package missing fails that first use with
 * node's own `Cannot find module 'undici'`.
 */
export function undici(): typeof Undici {
  return (loaded ??= require('undici') as typeof Undici);
}
