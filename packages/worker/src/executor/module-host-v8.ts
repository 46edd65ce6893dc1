/**
 * The module host's V8 flags, set as a side effect of importing this file: `module-host-main.ts`
 * imports it first, so that they are set before any other code of the host runs (ES imports are
 * evaluated in order; V8 compiles functions at their first call), except one already in the
 * host's `process.execArgv`. See `host-v8-flags.ts`.
 */
import { hostV8Flags, setV8Flags } from './host-v8-flags.js';

// A flag the host was started with (the worker's own node flags, passed on in execArgv) wins.
setV8Flags(hostV8Flags(process.versions.v8, process.execArgv));
