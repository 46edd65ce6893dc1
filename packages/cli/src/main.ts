#!/usr/bin/env node
/** The `mpd` command's entry (its `bin`); what it does is `run-mpd.ts`. */
import { runMpd } from './run-mpd.js';

const code = await runMpd(process.argv.slice(2));
if (code !== undefined) process.exitCode = code;
