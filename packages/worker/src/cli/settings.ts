/**
 * The settings of `mpd-worker`: one row per flag (flag, environment variable, default, help,
 * schema) and the checks across settings. Keys are named like the library options they
 * become, where they become one (see options-from-settings.ts).
 */
import {
  bodyLimitText,
  commaSeparatedText,
  defineSettings,
  hostText,
  integerText,
  LOG_LEVELS,
  logLevelText,
  packageVersion,
  pathText,
  portText,
  type RawSettings,
  sizeText,
  sizeTextOf,
  switchText,
  TLS_SETTING_NEEDS,
  tlsFileSettings,
  tokenText,
} from '@mpd/server-kit/cli';
import { Command } from 'commander';
import { endpointOrigin, WORKER_ENDPOINT_RULE } from '@mpd/contract/endpoint-origin';
import { LIMITS } from '@mpd/contract/limits';
import { z } from 'zod';
import { WorkerConfigError } from '../errors.js';
import { DEFAULT_WORKER_OPTIONS, PACK_STALL_MAX_MS, PACK_STALL_MIN_MS } from '../worker-defaults.js';

const list = commaSeparatedText.pipe(
  z
    .array(
      z
        .string()
        .max(LIMITS.name.maxLength, `must be names of at most ${LIMITS.name.maxLength} characters`)
        .regex(/^[\w.+-]+$/, 'must be a comma-separated list of names (letters, digits, . _ + -)'),
    )
    .max(LIMITS.capabilities.maxListItems, `must be at most ${LIMITS.capabilities.maxListItems} names`),
);
const url = z
  .string()
  .trim()
  .url('must be a URL such as http://127.0.0.1:8080')
  .refine((value) => /^https?:\/\//i.test(value), 'must be an http:// or https:// URL');

/** `--endpoint`: `scheme://host:port`, as the orchestrator accepts it (refused here, before any registration). */
const endpointUrl = url.refine((value) => endpointOrigin(value) !== undefined, WORKER_ENDPOINT_RULE);

const filePath = pathText();

/** A worker id: the contract's `LIMITS.workerId` (it travels in URL paths). */
const idRule = `must be 1-${LIMITS.workerId.maxLength} ${LIMITS.workerId.alphabet}`;
/** Seconds from 0 to 3600 (0: SIGKILL at once), in milliseconds as the options take them. */
const graceSecondsAsMs = z
  .string()
  .trim()
  .refine((text) => /^\d+(\.\d+)?$/.test(text) && Number(text) <= 3_600, 'must be a number of seconds from 0 to 3600')
  .transform((text) => Math.round(Number(text) * 1_000));

/** Seconds from 1 to 3600, in milliseconds as the options take them. */
const stallSecondsAsMs = z
  .string()
  .trim()
  .refine(
    (text) =>
      /^\d+(\.\d+)?$/.test(text) &&
      Number(text) * 1_000 >= PACK_STALL_MIN_MS &&
      Number(text) * 1_000 <= PACK_STALL_MAX_MS,
    'must be a number of seconds from 1 to 3600',
  )
  .transform((text) => Math.round(Number(text) * 1_000));

/** The settings of `mpd-worker`, in `--help` order. */
export const SETTINGS = defineSettings(
  {
    port: {
      flag: '--port <port>',
      env: 'MPD_PORT',
      default: String(DEFAULT_WORKER_OPTIONS.port),
      help: 'port to listen on; 0 picks a free port',
      schema: portText,
    },
    host: {
      flag: '--host <address>',
      env: 'MPD_HOST',
      default: DEFAULT_WORKER_OPTIONS.host,
      help: 'address to listen on',
      schema: hostText,
    },
    orchestrator: {
      flag: '--orchestrator <url>',
      env: 'MPD_ORCHESTRATOR_URL',
      help: 'orchestrator base URL to register with, e.g. http://127.0.0.1:8080',
      schema: url,
      url: true,
    },
    id: {
      flag: '--id <id>',
      env: 'MPD_WORKER_ID',
      help: 'worker id (default: worker-<hostname>-<random>)',
      schema: z.string().min(1, idRule).max(LIMITS.workerId.maxLength, idRule).regex(LIMITS.workerId.pattern, idRule),
    },
    endpoint: {
      flag: '--endpoint <url>',
      env: 'MPD_ENDPOINT',
      help: 'URL the orchestrator calls this worker at, scheme://host:port (default: http://<hostname>:<port>, https:// with --tls-cert)',
      schema: endpointUrl,
      url: true,
    },
    tags: {
      flag: '--tags <list>',
      env: 'MPD_TAGS',
      help: 'comma-separated tags advertised to the orchestrator, e.g. gpu,high-memory',
      schema: list,
    },
    tools: {
      flag: '--tools <list>',
      env: 'MPD_TOOLS',
      help: 'comma-separated tools advertised (default: known tools found on PATH)',
      schema: list,
    },
    slots: {
      flag: '--slots <n>',
      env: 'MPD_SLOTS',
      help: "how many modules this worker runs at once (default: number of CPUs); per worker, not the orchestrator's cluster-wide --max-parallelism",
      schema: integerText(1, 1024),
      aliases: [{ flag: '--max-parallel', env: 'MPD_MAX_PARALLEL' }],
    },
    pipeline: {
      flag: '--pipeline <file>',
      env: 'MPD_PIPELINE',
      help: 'pipeline file (ES module or .ts) whose modules this worker runs',
      schema: filePath,
    },
    isolation: {
      flag: '--isolation <mode>',
      env: 'MPD_ISOLATION',
      help: "where modules run: 'process' (default: in module hosts, child processes started ahead, one per slot; a module that blocks, crashes, exits or exhausts memory fails alone, and every process it started is stopped with it) or 'none' (in the worker's own process)",
      schema: z.enum(['process', 'none'], { errorMap: () => ({ message: "must be 'process' or 'none'" }) }),
    },
    killGraceMs: {
      flag: '--kill-grace <seconds>',
      env: 'MPD_KILL_GRACE',
      default: String(DEFAULT_WORKER_OPTIONS.killGraceMs / 1_000),
      help: "seconds between SIGTERM and SIGKILL when a cancelled or timed-out module's processes are stopped (with --isolation process); never past the heartbeat lease's end: a worker fences this long before its lease ends, at most a quarter of the heartbeat timeout",
      schema: graceSecondsAsMs,
    },
    moduleHeapLimitMb: {
      flag: '--module-heap-limit <MiB>',
      env: 'MPD_MODULE_HEAP_LIMIT',
      help: "V8 heap limit of each module host, in MiB (node's --max-old-space-size); a module that exhausts it fails alone (default: node's)",
      schema: integerText(16, 1_048_576),
    },
    joinToken: {
      flag: '--join-token <token>',
      env: 'MPD_JOIN_TOKEN',
      help: "the orchestrator's cluster join token (give it by the variable: a flag shows in ps and CI logs, and is warned about at start)",
      schema: tokenText,
      secret: true,
    },
    credentialFile: {
      flag: '--credential-file <file>',
      env: 'MPD_CREDENTIAL_FILE',
      help: 'keep the credential the orchestrator gives this worker in this file (mode 0600), so that a worker restarted after a crash registers again at once',
      schema: filePath,
    },
    token: {
      flag: '--token <token>',
      env: 'MPD_WORKER_TOKEN',
      help: 'a token the orchestrator may call this worker with, besides the credential it gets at registration (give it by the variable: the flag is warned about at start)',
      schema: tokenText,
      secret: true,
    },
    open: {
      flag: '--open [bool]',
      env: 'MPD_OPEN',
      default: String(DEFAULT_WORKER_OPTIONS.open),
      help: 'open mode: serve execute and cancel without any token while the worker holds none (a trusted network only; it warns at start); a worker fails closed without it. Not with --join-token, --token or client certificates',
      schema: switchText,
    },
    ...tlsFileSettings(filePath, {
      tlsClientCa: 'with --tls-cert: require mutual TLS, callers must present a certificate signed by this PEM CA',
      tlsCa: "the PEM CA an https:// orchestrator's certificate must chain to (default: system roots)",
      tlsClientCert:
        'the PEM certificate presented to an orchestrator that requires mutual TLS; needs --tls-client-key',
    }),
    bodyLimit: {
      flag: '--body-limit <size>',
      env: 'MPD_BODY_LIMIT',
      default: DEFAULT_WORKER_OPTIONS.bodyLimit,
      help: 'largest JSON request body accepted; execute carries dependency results',
      schema: bodyLimitText,
    },
    maxResultBytes: {
      flag: '--max-result-size <size>',
      env: 'MPD_MAX_RESULT_SIZE',
      default: sizeTextOf(DEFAULT_WORKER_OPTIONS.maxResultBytes),
      help: 'the largest result a module may return, as JSON (e.g. 512kb, 16mb); a module whose result is larger fails, naming its size and this limit, before anything is sent. Also the most the results passed to one module by reference may take together',
      schema: sizeText,
    },
    inlineResultBytes: {
      flag: '--inline-result-size <size>',
      env: 'MPD_INLINE_RESULT_SIZE',
      default: sizeTextOf(DEFAULT_WORKER_OPTIONS.inlineResultBytes),
      help: "results larger than this, as JSON, are stored in the orchestrator's artifact store and passed to dependants by reference",
      schema: sizeText,
    },
    // --- artifacts (issue 13, slice A) ---
    cacheDir: {
      flag: '--cache-dir <dir>',
      env: 'MPD_CACHE_DIR',
      default: DEFAULT_WORKER_OPTIONS.cacheDir,
      help: 'where the worker keeps the artifact blobs its modules uploaded or downloaded, by SHA-256 (with --orchestrator); a blob larger than --cache-size streams into the module and is not kept',
      schema: pathText('must be a directory path, not empty'),
    },
    cacheMaxBytes: {
      flag: '--cache-size <size>',
      env: 'MPD_CACHE_SIZE',
      default: sizeTextOf(DEFAULT_WORKER_OPTIONS.cacheMaxBytes),
      help: 'the most bytes of artifact blobs the cache keeps (e.g. 2gb); past it the least recently used are removed; a download larger than this streams into the module and is not kept',
      schema: sizeText,
    },
    packStallMs: {
      flag: '--pack-stall <seconds>',
      env: 'MPD_PACK_STALL',
      default: String(DEFAULT_WORKER_OPTIONS.packStallMs / 1_000),
      help: "seconds an archive streamed into its upload as its module packs it may go without a byte written before that upload is cut and the archive is uploaded by hash once packed (1 to 3600): below half the shortest idle timeout between the worker and the orchestrator (a reverse proxy's, an orchestrator's idleTimeoutMs), whose default is 60 s",
      schema: stallSecondsAsMs,
    },
    // --- module output (issue 13) ---
    outputBufferBytes: {
      flag: '--output-buffer-size <size>',
      env: 'MPD_OUTPUT_BUFFER_SIZE',
      default: sizeTextOf(DEFAULT_WORKER_OPTIONS.outputBufferBytes),
      help: "the module output one execution keeps in memory while it waits to be shipped to the orchestrator (e.g. 4mb); past it, lines go to the execution's spill file",
      schema: sizeText,
    },
    outputSpillBytes: {
      flag: '--output-spill-size <size>',
      env: 'MPD_OUTPUT_SPILL_SIZE',
      default: sizeTextOf(DEFAULT_WORKER_OPTIONS.outputSpillBytes),
      help: 'the module output one execution keeps in its spill file (under .mpd/output-spill/) once its memory is full; past it, lines are dropped, counted, and replaced by one line saying how many',
      schema: sizeText,
    },
    logLevel: {
      flag: '--log-level <level>',
      env: 'MPD_LOG_LEVEL',
      default: 'info',
      help: `log level: ${LOG_LEVELS.join(', ')}`,
      schema: logLevelText,
    },
  },
  {
    // Settings that need others: a certificate needs its key (and back), mutual TLS needs TLS.
    needs: TLS_SETTING_NEEDS,
    // A secured worker is never open (the library refuses it too: WorkerOptions.open).
    check: (values, { fail, nameOf }) => {
      // A result above the inline size goes by reference, and none may pass the largest: an inline
      // size above it could never apply (it was accepted silently).
      if (values.inlineResultBytes > values.maxResultBytes) {
        fail('inlineResultBytes', `must be at most ${nameOf('maxResultBytes')} (${values.maxResultBytes} bytes)`);
      }
      const secured = [values.joinToken, values.token, values.tlsClientCa, values.tlsClientCert];
      if (values.open && secured.some((value) => value !== undefined)) {
        fail(
          'open',
          'must not be given with --join-token, --token or client certificates (--tls-client-ca, --tls-client-cert): a secured worker serves execute and cancel only with a credential',
        );
      }
    },
    error: (name, message, cause) =>
      new WorkerConfigError('InvalidSetting', name, message, cause === undefined ? undefined : { cause }),
  },
);

/** The worker's settings, checked. */
export type WorkerCliSettings = ReturnType<typeof SETTINGS.parse>;

/**
 * The `mpd-worker` command: flags with their environment variables and help.
 * @param name the command's name in its usage line (`mpd worker` when run by `mpd`)
 */
export function createCommand(name = 'mpd-worker'): Command {
  return SETTINGS.command(
    name,
    'Run an mpd worker: it registers with the orchestrator and executes the pipeline modules it is sent.\n' +
      'SIGTERM or SIGINT drains it (running modules finish, then it unregisters and exits); a second signal cancels them. ' +
      'Signal the mpd process itself, not a wrapper such as pnpm.\n' +
      'Exit codes: 0 stopped after a drain or a signal, 1 cannot listen or a drain failed, 2 invalid setting or a registration refused as invalid, ' +
      '3 replaced by another process under this --id (do not restart), 130 a second signal cancelled running modules.',
  ).version(packageVersion(new URL('../../package.json', import.meta.url)), '-V, --version', 'print the version');
}

/**
 * Checks the settings of a parsed command (defaults filled in by commander), or texts as given
 * (nothing filled in); throws {@link WorkerConfigError} naming the flag and environment
 * variable of the first bad setting, in flag order.
 */
export function parseSettings(input: Command | RawSettings<typeof SETTINGS.rows>): WorkerCliSettings {
  return SETTINGS.parse(input);
}
