/**
 * The development entry of the orchestrator's command: `pnpm orchestrator …` in this repository runs it
 * under tsx. Users run `mpd orchestrator …` (`@mpd/cli`), the same command.
 */
import { developmentRunOptions } from '@mpd/server-kit/cli';
import { runOrchestratorCli } from './run-orchestrator-cli.js';

await runOrchestratorCli(process.argv.slice(2), developmentRunOptions('orchestrator'));
