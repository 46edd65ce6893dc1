/**
 * The development entry of the worker's command: `pnpm worker …` in this repository runs it
 * under tsx. Users run `mpd worker …` (`@mpd/cli`), the same command.
 */
import { developmentRunOptions } from '@mpd/server-kit/cli';
import { runWorkerCli } from './run-worker-cli.js';

await runWorkerCli(process.argv.slice(2), developmentRunOptions('worker'));
