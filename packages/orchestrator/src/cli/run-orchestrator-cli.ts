/**
 * `mpd orchestrator` (and its alias `mpd-orchestrator`; `pnpm orchestrator` in this repository):
 * serves the worker registry and, with `--pipeline FILE`, runs the pipeline on the registered
 * workers. Run `mpd orchestrator --help` for the flags (settings.ts); what they become is
 * options-from-settings.ts. This file holds the process concerns: exit codes, signals and the
 * listening line.
 *
 * stdout starts with one line, `mpd orchestrator listening on http://HOST:PORT` (https:// with
 * `--tls-cert`; for `--host 0.0.0.0`, the default, `http://0.0.0.0:PORT (from other machines:
 * http://10.0.0.5:PORT, …)`); with `--pipeline` the run's progress lines and summary table follow it. Logs
 * go to stderr. Exit codes: 0 ok, 1 failure or failed pipeline, 2 invalid setting.
 */
import { access, constants } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Pipeline } from '@mpd/pipeline';
import {
  type CliRunOptions,
  EXIT_INVALID_SETTING,
  exitInvalidSetting,
  type FlushableLog,
  exitWithSettingError,
  logBase,
  LOG_FORMATTERS,
  type OldNameGiven,
  type SecretFlagGiven,
  logProcessWarnings,
  logWritten,
  makeDirectory,
  writeAfterLog,
} from '@mpd/server-kit/cli';
import { CommanderError } from 'commander';
import type { Logger } from 'pino';
import { OrchestratorConfigError } from '../errors.js';
import type { RunningOrchestrator } from '../server.js';
import { runOptions, serverOptions } from './options-from-settings.js';
import { createCommand, type OrchestratorCliSettings, parseSettings, SETTINGS } from './settings.js';
import { readTlsFiles, type TlsFiles } from './tls-files.js';

/** The run's options as the settings give them (`runOptions`), its logs directory resolved. */
type RunSettings = ReturnType<typeof runOptions> & { logsDir: string };

const EXIT_OK = 0;
const EXIT_FAILURE = 1;

/** The command's name and what relative paths are relative to, resolved once. */
interface CliContext {
  name: string;
  baseDir: string;
  /** {@link CliRunOptions.beforeLoad}. */
  beforeLoad: CliRunOptions['beforeLoad'];
}

/** The checked settings, the old names they were given by, and the secrets given as flags. */
function readSettings(
  argv: string[],
  { name }: CliContext,
): {
  settings: OrchestratorCliSettings;
  oldNames: OldNameGiven[];
  secretFlags: SecretFlagGiven[];
} {
  const command = createCommand(name).exitOverride();
  try {
    command.parse(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed the help or the usage error.
      process.exit(error.exitCode === 0 ? EXIT_OK : EXIT_INVALID_SETTING);
    }
    throw error;
  }
  try {
    return {
      settings: parseSettings(command),
      oldNames: SETTINGS.oldNamesGiven(command),
      secretFlags: SETTINGS.secretFlagsGiven(command),
    };
  } catch (error) {
    if (error instanceof OrchestratorConfigError) exitWithSettingError(name, error.message);
    throw error;
  }
}

/** Reads the TLS files now, so a bad path exits 2 before anything starts. */
function readTls(settings: OrchestratorCliSettings, { name, baseDir }: CliContext): TlsFiles {
  try {
    return readTlsFiles(settings, baseDir);
  } catch (error) {
    if (error instanceof OrchestratorConfigError) exitWithSettingError(name, error.message);
    throw error;
  }
}

/** Loads `--pipeline`; exits 2 naming it, after the lines logged so far (`log`), when it cannot. */
async function loadPipeline(file: string, { name, baseDir }: CliContext, log: FlushableLog): Promise<Pipeline> {
  const path = resolve(baseDir, file);
  const { loadPipelineFile } = await import('@mpd/pipeline');
  try {
    return await loadPipelineFile(path);
  } catch (error) {
    await logWritten(log);
    exitInvalidSetting(name, SETTINGS.nameOf('pipeline'), error instanceof Error ? error.message : String(error));
  }
}

/**
 * Makes the run's logs directory and checks it can be written, before anything starts: a
 * directory that cannot be used exits 2 naming `--logs-dir`, as `--artifacts-dir` and
 * `--cache-dir` are checked at start (found by a new user: `--logs-dir /etc/passwd/logs` ran,
 * succeeded and kept no log, with a stack trace per attempt on stderr).
 */
async function checkLogsDir(dir: string, { name }: CliContext, log: FlushableLog): Promise<void> {
  try {
    await makeDirectory(dir);
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    await logWritten(log);
    exitInvalidSetting(name, SETTINGS.nameOf('logsDir'), `cannot use ${dir}: ${reason}`);
  }
}

async function main(argv: string[], context: CliContext): Promise<number> {
  const { name, baseDir } = context;
  const { settings, oldNames, secretFlags } = readSettings(argv, context);
  const tls = readTls(settings, context);
  // Loaded after the settings are valid, so --help and setting errors answer quickly: what is
  // imported above (settings.ts and its imports, `@mpd/server-kit/cli`) loads none of the
  // server's libraries (express, ts-rest, pino, the contract's schemas; bench/cli-start.ts).
  const { startOrchestrator } = await import('../server.js');
  const { destination, pino } = await import('pino');
  const { listeningText } = await import('@mpd/server-kit');
  // The run's own code, loaded before tsx is registered (below), as the server's is.
  const fromRun = settings.pipeline === undefined ? undefined : await import('./run-from-cli.js');
  // Only now, and only for a pipeline file: `mpd` registers tsx here (`beforeLoad`), and every
  // module imported after it goes through tsx's loader hooks, the server's own and its
  // libraries' too when they came later (round AA's AA5, redone in round AC).
  if (fromRun) {
    // A run calls its workers: their HTTP client (undici) is loaded before tsx's hooks, which
    // would otherwise see each of its files (`loadTransport`; round AD: started beside a worker,
    // a one-module run ends sooner, median 1,415 against 1,500 ms of 8 alternating pairs).
    await (await import('@mpd/client')).loadTransport();
    await context.beforeLoad?.();
  }
  // Asynchronous writes: a line per module finished (and more at debug) costs a blocking write
  // to stderr on the dispatch path otherwise. Every exit waits for the log to be written first
  // (`logWritten`; pino's own flush at exit writes what is queued while a write may still be
  // under way: its lines came after the command's last line, or never; a SIGKILL can lose the
  // last lines).
  const logDestination = destination({ dest: 2, sync: false });
  const logger: Logger = pino(
    { base: logBase('mpd-orchestrator'), level: settings.logLevel, formatters: LOG_FORMATTERS },
    logDestination,
  );
  // Node's and libraries' warnings too: stderr carries JSON logs only.
  logProcessWarnings(logger);
  // A log line (stderr carries JSON logs only), at warn: one per old name given.
  for (const { oldName, name: newName, message } of oldNames)
    logger.warn({ deprecated: oldName, use: newName }, message);
  // One per secret given as a flag, naming the flag and its variable, never the value.
  for (const { flag, env, message } of secretFlags) logger.warn({ flag, use: env }, message);
  const pipeline =
    settings.pipeline === undefined ? undefined : await loadPipeline(settings.pipeline, context, logDestination);
  // With --pipeline: the run's options, its logs directory checked before anything listens.
  let run: { fromRun: typeof import('./run-from-cli.js'); pipeline: Pipeline; options: RunSettings } | undefined;
  if (pipeline && fromRun) {
    const fromSettings = runOptions(settings, tls, baseDir);
    // A directory per run under the default, named by its start time (`:` is not allowed on every file system).
    const logsDir =
      fromSettings.logsDir ?? resolve(baseDir, fromRun.DEFAULT_LOGS_DIR, new Date().toISOString().replace(/:/g, '-'));
    await checkLogsDir(logsDir, context, logDestination);
    run = { fromRun, pipeline, options: { ...fromSettings, logsDir } };
  }

  let orchestrator: RunningOrchestrator;
  try {
    orchestrator = await startOrchestrator({ ...serverOptions(settings, tls, baseDir), logger });
  } catch (error) {
    logger.fatal({ err: error }, 'orchestrator could not start');
    // The command's own line last, after the log's (the fatal line came after it in 2 of 12 runs).
    await writeAfterLog(logDestination, `${name}: ${error instanceof Error ? error.message : String(error)}\n`);
    return error instanceof OrchestratorConfigError ? EXIT_INVALID_SETTING : EXIT_FAILURE;
  }

  const abort = new AbortController();
  const stopped = new Promise<void>((resolveStopped) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      if (abort.signal.aborted) {
        logger.warn({ signal }, 'second signal: exiting without waiting');
        // Without waiting for the run, but for the log (milliseconds at most, see logWritten).
        void logWritten(logDestination).then(() => process.exit(EXIT_FAILURE));
        return;
      }
      logger.info({ signal }, 'stopping');
      abort.abort(new Error(`received ${signal}`));
      resolveStopped();
    };
    process.on('SIGTERM', onSignal).on('SIGINT', onSignal);
  });
  // Printed once the signal handlers are in place: a SIGTERM sent on seeing it stops gracefully.
  // The host bound (0.0.0.0 by default), and then the addresses workers on other machines can use.
  process.stdout.write(`mpd orchestrator listening on ${listeningText(orchestrator.url, settings.host)}\n`);

  let exitCode = EXIT_OK;
  if (run) {
    try {
      const { success } = await run.fromRun.runPipelineFromCli({
        ...run.options,
        pipeline: run.pipeline,
        registry: orchestrator.registry,
        endpointPolicy: orchestrator.endpointPolicy,
        executionLogs: orchestrator.executionLogs,
        logger,
        signal: abort.signal,
      });
      exitCode = success ? EXIT_OK : EXIT_FAILURE;
    } catch (error) {
      logger.error({ err: error }, 'pipeline run failed');
      exitCode = EXIT_FAILURE;
    }
    // The run's blobs kept for --artifact-retention from now; older ones removed.
    await orchestrator.artifactStore.endRun().then(
      (removed) => removed > 0 && logger.info({ removed }, 'artifact store: blobs past the retention removed'),
      (error: unknown) => logger.error({ err: error }, 'artifact store: the sweep at the end of the run failed'),
    );
  } else {
    await stopped;
  }
  await orchestrator.close();
  await logWritten(logDestination);
  return exitCode;
}

/**
 * Runs the orchestrator's command in this process, as `mpd orchestrator ARGS…` does: it owns
 * the process from here (its SIGTERM and SIGINT handlers, its stdout and stderr) and exits it
 * with the command's exit code (0, 1 or 2, see above) once the server stopped or the run ended;
 * the promise never resolves.
 * @param argv the arguments after the command's name (no node, no script), e.g. `['--port', '0']`
 */
export async function runOrchestratorCli(argv: string[], options: CliRunOptions = {}): Promise<never> {
  const context = {
    name: options.name ?? 'mpd-orchestrator',
    baseDir: options.cwd ?? process.cwd(),
    beforeLoad: options.beforeLoad,
  };
  // Exit explicitly: a pipeline run may leave timers or sockets behind that would keep the process alive.
  process.exit(await main(argv, context));
}
