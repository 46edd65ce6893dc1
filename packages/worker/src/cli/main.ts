/**
 * The development entry of the worker's command: `pnpm worker …` in this repository runs it
 * under tsx. Users run `mpd worker …` (`@mpd/cli`), the same command.
 */
import { runWorkerCli } from './run-worker-cli.js';

// pnpm runs a root script in the repository's root; INIT_CWD is where `pnpm worker` was typed.
await runWorkerCli(process.argv.slice(2), { cwd: process.env.INIT_CWD ?? process.cwd() });
