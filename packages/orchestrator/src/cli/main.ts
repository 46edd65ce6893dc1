/**
 * The development entry of the orchestrator's command: `pnpm orchestrator …` in this repository runs it
 * under tsx. Users run `mpd orchestrator …` (`@mpd/cli`), the same command.
 */
import { runOrchestratorCli } from './run-orchestrator-cli.js';

// pnpm runs a root script in the repository's root; INIT_CWD is where `pnpm orchestrator` was typed.
await runOrchestratorCli(process.argv.slice(2), { cwd: process.env.INIT_CWD ?? process.cwd() });
