/**
 * `@mpd/orchestrator/cli`: the `mpd-orchestrator` command as a function, for the `mpd` command
 * (`@mpd/cli`: `mpd orchestrator …`) and this repository's `pnpm orchestrator`.
 */
export { runOrchestratorCli } from './run-orchestrator-cli.js';
export type { CliRunOptions } from '@mpd/server-kit';
