#!/usr/bin/env node
/** The `mpd-worker` command: an alias of `mpd worker`, the name the worker's command had before `mpd`. */
import { runMpd } from './run-mpd.js';

const code = await runMpd(['worker', ...process.argv.slice(2)]);
if (code !== undefined) process.exitCode = code;
