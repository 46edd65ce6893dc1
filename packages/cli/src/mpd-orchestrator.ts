#!/usr/bin/env node
/** The `mpd-orchestrator` command: an alias of `mpd orchestrator`, the name the orchestrator's command had before `mpd`. */
import { runMpd } from './run-mpd.js';

const code = await runMpd(['orchestrator', ...process.argv.slice(2)]);
if (code !== undefined) process.exitCode = code;
