/**
 * `mpd worker` (and its alias `mpd-worker`; `pnpm worker` in this repository): starts a worker
 * from its flags and MPD_* environment variables. Run `mpd worker --help` for the flags (settings.ts); what they
 * become is options-from-settings.ts. This file holds the process concerns: exit codes,
 * signals and the listening line.
 *
 * Exit codes: 0 stopped after a drain or a signal; 1 cannot listen, or a drain failed; 2 an
 * invalid setting or command line, or a registration the orchestrator refused as invalid (the
 * same settings would be refused again); 3 replaced: another process registered under this
 * `--id` (a supervisor should not restart it, or the two would keep replacing each other);
 * 130 a second signal cancelled the modules still running.
 */
import {
  type CliRunOptions,
  EXIT_INVALID_SETTING,
  exitInvalidSetting,
  exitWithSettingError,
  logBase,
  LOG_FORMATTERS,
  logProcessWarnings,
  logWritten,
  writeAfterLog,
} from '@mpd/server-kit/cli';
import { CommanderError } from 'commander';
import { workerOptions } from './options-from-settings.js';
import { createCommand, parseSettings, SETTINGS } from './settings.js';
import { readTlsFiles } from './tls-files.js';
import { WorkerConfigError } from '../errors.js';

/** The exit code of a worker whose registration the orchestrator refused as invalid: that of an invalid setting. */
const EXIT_REGISTRATION_REFUSED = EXIT_INVALID_SETTING;
/** The exit code of a worker another process replaced under its id. */
const EXIT_REPLACED = 3;

/**
 * The log's writes: once this much is buffered (bytes, about 15 lines)… Measured: `tsx
 * bench/cli-compare.ts --shape wide --size 8000` (issue 14, round I; docs/performance.md "The
 * worker's main thread per module").
 */
const LOG_BLOCK_BYTES = 4 * 1024;
/**
 * …and every this many ms whatever is buffered (a line waits at most this long; an idle worker's
 * flush is an empty write, ten a second).
 */
const LOG_FLUSH_MS = 100;

/**
 * Runs the worker's command in this process, as `mpd worker ARGS…` does: it owns the process
 * from here (its SIGTERM and SIGINT handlers, its stdout and stderr) and exits it with the exit
 * code above once the worker stopped. The promise resolves once the worker listens (or never,
 * when the command exits first: `--help`, a bad setting).
 * @param argv the arguments after the command's name (no node, no script), e.g. `['--port', '0']`
 */
export async function runWorkerCli(argv: string[], options: CliRunOptions = {}): Promise<void> {
  const name = options.name ?? 'mpd-worker';
  const baseDir = options.cwd ?? process.cwd();
  const command = createCommand(name).exitOverride();
  try {
    command.parse(argv, { from: 'user' });
  } catch (error) {
    // Commander already printed the help or the usage error: 0 for --help, 2 for a bad command line.
    if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : EXIT_INVALID_SETTING);
    throw error;
  }
  let settings;
  let tls;
  try {
    settings = parseSettings(command);
    // Read now, so a bad path exits 2 before anything starts.
    tls = readTlsFiles(settings, baseDir);
  } catch (error) {
    exitWithSettingError(name, (error as Error).message);
  }
  // Loaded after the settings are valid, so --help and setting errors answer quickly: what is
  // imported above (settings.ts and its imports, `@mpd/server-kit/cli`) loads none of the
  // server's libraries (express, ts-rest, pino, the contract's schemas; bench/cli-start.ts).
  const { loadPipelineFile } = await import('@mpd/pipeline');
  const { pino, destination } = await import('pino');
  const { startWorker } = await import('../server.js');
  const { listeningText } = await import('@mpd/server-kit');
  // Only now, and only for a pipeline file: `mpd` registers tsx here (`beforeLoad`), and every
  // module imported after it goes through tsx's loader hooks, the server's own and its
  // libraries' too when they came later (round AA's AA5, redone in round AC).
  if (settings.pipeline) {
    // A worker with an orchestrator registers as soon as it listens: its HTTP client (undici)
    // is loaded before tsx's hooks, which would otherwise see each of its files (`loadTransport`).
    if (settings.orchestrator) await (await import('@mpd/client')).loadTransport();
    await options.beforeLoad?.();
  }
  // Asynchronous writes: a blocking write to stderr per module started and finished would sit
  // on every execute's path. The command's exits wait for the log to be written (exitAfterLog;
  // a SIGKILL can lose the last lines). Written in blocks of LOG_BLOCK_BYTES, and every LOG_FLUSH_MS
  // (sonic-boom's `minLength` and `periodicFlush`): one write per line
  // ("module succeeded") was a thread-pool write and its callback per module, 4-5 % of a
  // loaded worker's main thread (issue 14, round I).
  const logDestination = destination({
    dest: 2,
    sync: false,
    minLength: LOG_BLOCK_BYTES,
    periodicFlush: LOG_FLUSH_MS,
  });
  const logger = pino(
    { level: settings.logLevel, base: logBase('mpd-worker'), formatters: LOG_FORMATTERS },
    logDestination,
  );
  /**
   * Exits once every log line is written (pino's own flush at exit writes what is queued while a
   * write may still be under way: out of order), `lastLine` after them (see `logWritten` in `@mpd/server-kit`).
   */
  const exitAfterLog = async (code: number, lastLine?: string): Promise<never> => {
    if (lastLine === undefined) await logWritten(logDestination);
    else await writeAfterLog(logDestination, `${name}: ${lastLine}\n`);
    process.exit(code);
  };
  // Node's and libraries' warnings too: stderr carries JSON logs only.
  logProcessWarnings(logger);
  // A log line (stderr carries JSON logs only), at warn: one per old name given.
  for (const { oldName, name: newName, message } of SETTINGS.oldNamesGiven(command)) {
    logger.warn({ deprecated: oldName, use: newName }, message);
  }
  // One per secret given as a flag, naming the flag and its variable, never the value.
  for (const { flag, env, message } of SETTINGS.secretFlagsGiven(command)) logger.warn({ flag, use: env }, message);
  let pipeline;
  if (settings.pipeline) {
    try {
      pipeline = await loadPipelineFile(settings.pipeline, baseDir);
    } catch (error) {
      await logWritten(logDestination);
      exitInvalidSetting(name, SETTINGS.nameOf('pipeline'), (error as Error).message);
    }
  }
  if (!settings.orchestrator) {
    logger.warn('no --orchestrator given: serving the worker API without registering anywhere');
  }

  let worker;
  try {
    worker = await startWorker({
      ...workerOptions(settings, tls, baseDir),
      logger,
      ...(pipeline ? { pipeline } : {}),
    });
  } catch (error) {
    return exitAfterLog(
      (error as { code?: unknown }).code === 'InvalidSetting' ? EXIT_INVALID_SETTING : 1,
      asFlagMessage(error as Error),
    );
  }
  const advertised = worker.endpoint === worker.url ? '' : ` (the orchestrator calls it at ${worker.endpoint})`;

  // Drained by the orchestrator (POST /api/workers/{id}/drain) or by a signal: exit once stopped.
  // Stopped on its own: refused (2) or replaced (3), with the reason as the last line.
  let exitCode = 0;
  void worker.stopped.then((exit) =>
    exit.reason === 'stopped'
      ? exitAfterLog(exitCode)
      : exitAfterLog(exit.reason === 'registration-refused' ? EXIT_REGISTRATION_REFUSED : EXIT_REPLACED, exit.message),
  );
  let signals = 0;
  const shutdown = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: cancelling running modules and exiting');
      exitCode = 130;
      void worker.close(0);
      return;
    }
    logger.info(
      { signal, running: worker.load },
      'draining: finishing running modules, then unregistering (signal again to cancel them)',
    );
    worker.drain().catch((error: unknown) => {
      logger.error({ err: error }, 'shutdown failed');
      void exitAfterLog(1);
    });
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  // Printed once the signal handlers are in place: a SIGTERM sent on seeing it drains gracefully.
  // The host bound (0.0.0.0 by default); no list of the machine's addresses ({} as the
  // interfaces): what the orchestrator calls is the endpoint, said after it.
  process.stdout.write(
    `mpd worker ${worker.id} listening on ${listeningText(worker.url, settings.host, {})}${advertised}\n`,
  );
}

/**
 * The library names a setting at fault by its option (`Invalid setting cacheDir: …`, found when
 * the worker starts); the CLI's user wrote a flag: `Invalid setting --cache-dir (MPD_CACHE_DIR): …`.
 */
function asFlagMessage(error: Error): string {
  if (!(error instanceof WorkerConfigError)) return error.message;
  if (!Object.hasOwn(SETTINGS.rows, error.setting)) return error.message;
  const flag = SETTINGS.nameOf(error.setting as keyof typeof SETTINGS.rows);
  return error.message.replace(`Invalid setting ${error.setting}:`, `Invalid setting ${flag}:`);
}
