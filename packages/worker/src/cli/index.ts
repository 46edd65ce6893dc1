/**
 * `@mpd/worker/cli`: the `mpd-worker` command as a function, for the `mpd` command
 * (`@mpd/cli`: `mpd worker …`) and this repository's `pnpm worker`.
 */
export { runWorkerCli } from './run-worker-cli.js';
export type { CliRunOptions } from '@mpd/server-kit';
