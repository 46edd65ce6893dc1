/**
 * The settings of `mpd-orchestrator`: one row per flag (flag, environment variable, default,
 * help, schema), the checks across settings, and what the run's environment is made of.
 * Keys are named like the library options they become (see options-from-settings.ts).
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
import { z } from 'zod';
import { parseS3Url } from '../artifacts/s3-url.js';
import { OrchestratorConfigError } from '../errors.js';
import { allowEntryProblem } from '../http/endpoint-policy.js';
import { DEFAULT_ORCHESTRATOR_OPTIONS, DEFAULT_START_OPTIONS } from '../orchestrator-defaults.js';
import { DEFAULT_RUN_OPTIONS } from '../runner/run-defaults.js';
import { OUTPUT_MODES } from './output-modes.js';

const secondsText = z
  .string()
  .refine((text) => /^\d+(\.\d+)?$/.test(text) && Number(text) > 0 && Number(text) <= 86_400, {
    message: 'must be a number of seconds above 0 and at most 86400',
  })
  .transform(Number);

/** Seconds as given, in milliseconds as the options take them. */
const secondsAsMs = secondsText.transform((seconds) => Math.round(seconds * 1000));

/** The text of a default given in milliseconds, for a setting given in seconds. */
const secondsOf = (ms: number): string => String(ms / 1000);

/** Milliseconds per unit of {@link durationText}. */
const DURATION_UNITS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** A duration as `30s`, `90m`, `12h`, `7d` or `0`, in milliseconds as the options take it. */
const durationText = z
  .string()
  .trim()
  .regex(/^(0|\d+(\.\d+)?(s|m|h|d))$/, 'must be 0 or a number with a unit: 30s, 90m, 12h, 7d')
  .transform((text) => (text === '0' ? 0 : Math.round(parseFloat(text) * DURATION_UNITS[text.slice(-1) as 's']!)));

/** The text of a default given in milliseconds, for a {@link durationText} setting: in whole days, hours, minutes or seconds. */
const durationOf = (ms: number): string => {
  const [unit, size] = Object.entries(DURATION_UNITS)
    .reverse()
    .find(([, size]) => ms % size === 0) ?? ['s', 1_000];
  return ms === 0 ? '0' : `${ms / size}${unit}`;
};

const nameList = commaSeparatedText.refine((names) => names.length > 0, {
  message: 'must be a comma-separated list of names',
});

const filePath = pathText('must be a file path, not empty');

const envEntries = z.array(
  z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*(=[\s\S]*)?$/, 'must be NAME=VALUE or NAME, where NAME is letters, digits and _'),
);

/** The settings of `mpd-orchestrator`, in `--help` order. */
export const SETTINGS = defineSettings(
  {
    port: {
      flag: '--port <n>',
      env: 'MPD_PORT',
      default: String(DEFAULT_START_OPTIONS.port),
      help: 'port to listen on; 0 picks a free port',
      schema: portText,
    },
    host: {
      flag: '--host <h>',
      env: 'MPD_HOST',
      default: DEFAULT_START_OPTIONS.host,
      help: 'address to listen on; 0.0.0.0 accepts workers on other machines',
      schema: hostText,
    },
    heartbeatIntervalSeconds: {
      flag: '--heartbeat-interval <seconds>',
      env: 'MPD_HEARTBEAT_INTERVAL',
      default: String(DEFAULT_ORCHESTRATOR_OPTIONS.heartbeatIntervalSeconds),
      help: 'how often workers are told to send a heartbeat',
      schema: secondsText,
    },
    heartbeatTimeoutMs: {
      flag: '--heartbeat-timeout <seconds>',
      env: 'MPD_HEARTBEAT_TIMEOUT',
      default: secondsOf(DEFAULT_ORCHESTRATOR_OPTIONS.heartbeatTimeoutMs),
      help: 'a worker without a heartbeat for this long is Offline; must exceed the interval',
      schema: secondsAsMs,
    },
    pipeline: {
      flag: '--pipeline <file>',
      env: 'MPD_PIPELINE',
      help: 'run this pipeline file (default export definePipeline(...)) on the workers, then exit 0 on success or 1 on failure; without it the orchestrator only serves the registry',
      schema: filePath,
    },
    minWorkers: {
      flag: '--min-workers <n>',
      env: 'MPD_MIN_WORKERS',
      default: '1',
      help: 'with --pipeline: how many workers to wait for before starting (at most --worker-wait; then the run starts with those there are)',
      schema: integerText(1, 1024),
    },
    report: {
      flag: '--report <file>',
      env: 'MPD_REPORT',
      help: 'with --pipeline: write the JSON run report (every module, attempt, worker and timing) to this file',
      schema: filePath,
    },
    timings: {
      flag: '--timings <file>',
      env: 'MPD_TIMINGS',
      help: 'with --pipeline: module durations of earlier runs, read before the run (the longest remaining work starts first) and updated after it; keep it between CI runs like a cache',
      schema: filePath,
    },
    logsDir: {
      flag: '--logs-dir <dir>',
      env: 'MPD_LOGS_DIR',
      help: "with --pipeline: keep each attempt's output as <dir>/<module>/<attempt>.log, referenced from the report (modules[].attempts[].log) (default: .mpd/logs/<the run's start time>)",
      schema: pathText('must be a directory path, not empty'),
    },
    output: {
      flag: '--output <mode>',
      env: 'MPD_OUTPUT',
      help: "with --pipeline: how the modules' output is printed: grouped (one collapsible section per module when it ends: ::group:: under GitHub Actions, --- under Buildkite), prefixed ([module] line, live) or quiet (none; the summary still repeats a failed module's last lines) (default: grouped under GITHUB_ACTIONS=true or BUILDKITE=true, else prefixed)",
      schema: z.enum(OUTPUT_MODES, { errorMap: () => ({ message: `must be ${OUTPUT_MODES.join(', ')}` }) }),
    },
    env: {
      flag: '--env <NAME=VALUE>',
      env: 'MPD_ENV',
      help: "with --pipeline: an environment variable for every module (ctx.env); repeat the flag for more. NAME alone passes the orchestrator's own value on. In MPD_ENV: one NAME=VALUE or NAME per line",
      schema: envEntries,
      repeatable: true,
    },
    secretEnv: {
      flag: '--secret-env <NAME=VALUE>',
      env: 'MPD_SECRET_ENV',
      help: "with --pipeline: like --env, but the value is a secret: workers and the orchestrator mask it (***) in every log line, error and report. NAME alone passes the orchestrator's own value on (the safe way: a value in a flag shows in ps and CI logs, and is warned about at start)",
      schema: envEntries,
      repeatable: true,
      secret: true,
      // NAME alone passes a variable of the orchestrator's own environment on: no value on the command line.
      holdsSecret: (entry) => /=./.test(entry),
    },
    workingDirectory: {
      flag: '--working-directory <dir>',
      env: 'MPD_WORKING_DIRECTORY',
      help: "with --pipeline: the working directory of every module on its worker (default: the worker's current directory)",
      schema: pathText('must be a directory path, not empty'),
      aliases: [{ flag: '--workdir', env: 'MPD_WORKDIR' }],
    },
    runOnlyCategories: {
      flag: '--run-only-categories <list>',
      env: 'MPD_RUN_ONLY_CATEGORIES',
      help: 'with --pipeline: run only modules of these comma-separated categories (the others are Skipped)',
      schema: nameList,
      aliases: [{ flag: '--categories', env: 'MPD_CATEGORIES' }],
    },
    ignoreCategories: {
      flag: '--ignore-categories <list>',
      env: 'MPD_IGNORE_CATEGORIES',
      help: 'with --pipeline: skip modules of these comma-separated categories',
      schema: nameList,
    },
    failureMode: {
      flag: '--failure-mode <mode>',
      env: 'MPD_FAILURE_MODE',
      help: "with --pipeline: StopOnFirstFailure (cancel running modules, run only always-run ones) or WaitForAll (default: the pipeline's, else StopOnFirstFailure)",
      schema: z.enum(['StopOnFirstFailure', 'WaitForAll'], {
        errorMap: () => ({ message: 'must be StopOnFirstFailure or WaitForAll' }),
      }),
    },
    maxParallelism: {
      flag: '--max-parallelism <n>',
      env: 'MPD_MAX_PARALLELISM',
      help: "with --pipeline: at most this many modules at once across the cluster (default: the pipeline's, else the workers' slots)",
      schema: integerText(1, 100_000),
    },
    workerWaitMs: {
      flag: '--worker-wait <seconds>',
      env: 'MPD_WORKER_WAIT',
      default: secondsOf(DEFAULT_RUN_OPTIONS.workerWaitMs),
      help: 'with --pipeline: how long to wait for workers: for --min-workers before starting, and for a live worker that can run a ready module before it fails',
      schema: secondsAsMs,
    },
    maxLostAttempts: {
      flag: '--max-lost-attempts <n>',
      env: 'MPD_MAX_LOST_ATTEMPTS',
      default: String(DEFAULT_RUN_OPTIONS.maxLostAttempts),
      help: 'with --pipeline: how many times a module whose worker was lost is dispatched again; a module that kills every worker it lands on fails after that',
      schema: integerText(0, 100),
    },
    timeoutMarginMs: {
      flag: '--timeout-margin <seconds>',
      env: 'MPD_TIMEOUT_MARGIN',
      default: secondsOf(DEFAULT_RUN_OPTIONS.timeoutMarginMs),
      help: "with --pipeline: how long past a module's timeout to wait for its worker's answer before declaring it TimedOut",
      schema: secondsAsMs,
    },
    maxResultBytes: {
      flag: '--max-result-size <size>',
      env: 'MPD_MAX_RESULT_SIZE',
      default: sizeTextOf(DEFAULT_RUN_OPTIONS.maxResultBytes),
      help: "with --pipeline: the largest module result accepted inline, as JSON (e.g. 512kb, 16mb); a larger one fails its module, and an answer larger than such a result can make is not read. Results over a worker's --inline-result-size come by reference, unbound by it. Workers have their own --max-result-size",
      schema: sizeText,
    },
    joinToken: {
      flag: '--join-token <token>',
      env: 'MPD_JOIN_TOKEN',
      help: 'cluster join token workers register with; each then gets its own credential (give it by the variable: a flag shows in ps and CI logs, and is warned about at start)',
      schema: tokenText,
      secret: true,
    },
    adminToken: {
      flag: '--admin-token <token>',
      env: 'MPD_ADMIN_TOKEN',
      help: 'admin token for listing workers and unregistering or draining any worker (give it by the variable: the flag is warned about at start)',
      schema: tokenText,
      secret: true,
    },
    allowedWorkerHosts: {
      flag: '--allowed-worker-hosts <list>',
      env: 'MPD_ALLOWED_WORKER_HOSTS',
      help: "comma-separated hosts, *.domain patterns, addresses or address ranges (10.0.0.0/8) worker endpoints may be at (default: any). Link-local and metadata, multicast, unspecified and broadcast addresses and the orchestrator's own address and port are refused with or without it",
      schema: nameList.superRefine((entries, context) => {
        const problem = entries.map(allowEntryProblem).find((found) => found !== undefined);
        if (problem) context.addIssue({ code: 'custom', message: problem });
      }),
    },
    corsOrigins: {
      flag: '--cors-origins <list>',
      env: 'MPD_CORS_ORIGINS',
      help: 'comma-separated origins allowed to call the API from a browser (default: none, CORS off)',
      schema: nameList,
      url: true,
    },
    ...tlsFileSettings(filePath, {
      tlsClientCa: 'with --tls-cert: require mutual TLS, clients must present a certificate signed by this PEM CA',
      tlsCa:
        "with --pipeline: the PEM CA that https:// workers' certificates must chain to (default: the system's trusted roots)",
      tlsClientCert:
        'with --pipeline: the PEM certificate presented to workers that require mutual TLS; needs --tls-client-key',
    }),
    bodyLimit: {
      flag: '--body-limit <size>',
      env: 'MPD_BODY_LIMIT',
      default: DEFAULT_ORCHESTRATOR_OPTIONS.bodyLimit,
      help: 'largest JSON request body accepted (e.g. 512kb, 1mb); larger ones get 413',
      schema: bodyLimitText,
    },
    offlineRetentionMs: {
      flag: '--offline-retention <seconds>',
      env: 'MPD_OFFLINE_RETENTION',
      default: secondsOf(DEFAULT_ORCHESTRATOR_OPTIONS.offlineRetentionMs),
      help: 'how long an Offline worker stays listed before it is removed (it registers again if it comes back); an unregistered one goes at once',
      schema: secondsAsMs,
    },
    maxWorkers: {
      flag: '--max-workers <n>',
      env: 'MPD_MAX_WORKERS',
      default: String(DEFAULT_ORCHESTRATOR_OPTIONS.maxWorkers),
      help: 'most workers listed, Offline ones included; a new worker id past it gets 503 with Retry-After (a known one always registers again)',
      schema: integerText(1, 10_000_000),
    },
    maxPipelines: {
      flag: '--max-pipelines <n>',
      env: 'MPD_MAX_PIPELINES',
      default: String(DEFAULT_ORCHESTRATOR_OPTIONS.maxPipelines),
      help: 'most distinct pipelines the workers advertise at once; a registration with a new one past it gets 503 with Retry-After',
      schema: integerText(1, 100_000),
    },
    // --- artifacts (issue 13, slice A) ---
    artifactsDir: {
      flag: '--artifacts-dir <dir>',
      env: 'MPD_ARTIFACTS_DIR',
      default: DEFAULT_ORCHESTRATOR_OPTIONS.artifactsDir,
      help: "the artifact store's directory: one file per blob, named by its SHA-256 (made when the orchestrator starts)",
      schema: pathText('must be a directory path, not empty'),
    },
    maxArtifactBytes: {
      flag: '--max-artifact-size <size>',
      env: 'MPD_MAX_ARTIFACT_SIZE',
      default: sizeTextOf(DEFAULT_ORCHESTRATOR_OPTIONS.maxArtifactBytes),
      help: 'the largest blob the artifact store takes (e.g. 512mb, 2gb); a larger upload gets 413 before it is read',
      schema: sizeText,
    },
    // --- S3-compatible store and retention (issue 13, slice S) ---
    artifactStore: {
      flag: '--artifact-store <url>',
      env: 'MPD_ARTIFACT_STORE',
      help: 'keep artifacts in an S3-compatible bucket, s3://bucket/prefix, instead of --artifacts-dir: workers move bytes to and from it directly with presigned URLs; credentials from the AWS SDK (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance roles)',
      schema: z
        .string()
        .trim()
        .refine((text) => {
          try {
            return parseS3Url(text) !== undefined;
          } catch {
            return false;
          }
        }, "must be s3://bucket or s3://bucket/prefix (a bucket of 3 to 63 of a-z, 0-9, '.' and '-'; no '.' or '..' in the prefix)"),
      url: true,
    },
    artifactStoreEndpoint: {
      flag: '--artifact-store-endpoint <url>',
      env: 'MPD_ARTIFACT_STORE_ENDPOINT',
      help: 'with --artifact-store: the URL of an S3-compatible server (MinIO, Ceph, R2, …); default AWS S3 of the region',
      schema: z
        .string()
        .trim()
        .regex(/^https?:\/\/[^/]/i, 'must be an http:// or https:// URL'),
      url: true,
    },
    artifactStoreRegion: {
      flag: '--artifact-store-region <region>',
      env: 'MPD_ARTIFACT_STORE_REGION',
      help: "with --artifact-store: the bucket's region (default AWS_REGION, else us-east-1)",
      schema: z
        .string()
        .trim()
        .regex(/^[a-z0-9-]{1,64}$/, 'must be a region name such as us-east-1'),
    },
    artifactStorePathStyle: {
      flag: '--artifact-store-path-style [bool]',
      env: 'MPD_ARTIFACT_STORE_PATH_STYLE',
      default: String(DEFAULT_ORCHESTRATOR_OPTIONS.artifactStorePathStyle),
      help: 'with --artifact-store: path-style bucket URLs (http://host/bucket/key), as MinIO-style servers want',
      schema: switchText,
    },
    artifactRetentionMs: {
      flag: '--artifact-retention <duration>',
      env: 'MPD_ARTIFACT_RETENTION',
      default: durationOf(DEFAULT_ORCHESTRATOR_OPTIONS.artifactRetentionMs),
      help: "how long --artifacts-dir keeps a blob after the last run that wrote or read it ended (e.g. 12h, 30d; 0: removed when the run ends); swept at start and at each run's end. With --artifact-store, the bucket's lifecycle rule is the retention",
      schema: durationText,
    },
    registerPerMinute: {
      flag: '--register-limit <n>',
      env: 'MPD_REGISTER_LIMIT',
      default: String(DEFAULT_ORCHESTRATOR_OPTIONS.rateLimits.registerPerMinute),
      help: 'registrations per minute with the join token (all its holders together, from any address), or per client address without a join token',
      schema: integerText(1, 10_000_000),
    },
    heartbeatPerMinute: {
      flag: '--heartbeat-limit <n>',
      env: 'MPD_HEARTBEAT_LIMIT',
      default: String(DEFAULT_ORCHESTRATOR_OPTIONS.rateLimits.heartbeatPerMinute),
      help: 'heartbeats per worker (by its credential, from any address; heartbeats without one count per client address) per minute',
      schema: integerText(1, 10_000_000),
    },
    authFailuresPerMinute: {
      flag: '--auth-failure-limit <n>',
      env: 'MPD_AUTH_FAILURE_LIMIT',
      default: String(DEFAULT_ORCHESTRATOR_OPTIONS.rateLimits.authFailuresPerMinute),
      help: 'failed authentications (401/403) per client address and presented token per minute before that token gets 429 from there',
      schema: integerText(1, 10_000_000),
    },
    failedRequestsPerMinute: {
      flag: '--failed-request-limit <n>',
      env: 'MPD_FAILED_REQUEST_LIMIT',
      default: String(DEFAULT_ORCHESTRATOR_OPTIONS.rateLimits.failedRequestsPerMinute),
      help: 'failed requests (4xx but 429) per client address per minute before requests from it without a valid token get 429',
      schema: integerText(1, 10_000_000),
    },
    logLevel: {
      flag: '--log-level <level>',
      env: 'MPD_LOG_LEVEL',
      default: 'info',
      help: `log level of the logs on stderr: ${LOG_LEVELS.join(', ')}`,
      schema: logLevelText,
    },
  },
  {
    // Settings that need others: a certificate needs its key (and back), mutual TLS needs TLS;
    // an S3 endpoint is nothing without the bucket (given alone, it was silently unused).
    needs: [...TLS_SETTING_NEEDS, ['artifactStoreEndpoint', ['artifactStore']]],
    check: (settings, { fail, nameOf }) => {
      // Compares what the orchestrator will use: the timeout in whole milliseconds.
      if (settings.heartbeatTimeoutMs <= settings.heartbeatIntervalSeconds * 1000) {
        fail(
          'heartbeatTimeoutMs',
          `must be greater than ${nameOf('heartbeatIntervalSeconds')} (${settings.heartbeatIntervalSeconds})`,
        );
      }
    },
    finish: (
      {
        env,
        secretEnv,
        registerPerMinute,
        heartbeatPerMinute,
        authFailuresPerMinute,
        failedRequestsPerMinute,
        ...settings
      },
      processEnv,
    ) => ({
      ...settings,
      /** Environment variables sent to every module (`ctx.env`). */
      environmentVariables: environmentOf(env ?? [], processEnv),
      /** Secret environment variables sent to every module, masked in logs, errors and reports. */
      secretEnvironmentVariables: environmentOf(secretEnv ?? [], processEnv),
      rateLimits: { registerPerMinute, heartbeatPerMinute, authFailuresPerMinute, failedRequestsPerMinute },
    }),
    error: (name, message, cause) =>
      new OrchestratorConfigError('InvalidSetting', name, message, cause === undefined ? undefined : { cause }),
  },
);

/** The settings of the `mpd-orchestrator` command, checked. */
export type OrchestratorCliSettings = ReturnType<typeof SETTINGS.parse>;

/**
 * The `mpd-orchestrator` command line. Every flag also reads an environment variable
 * (the flag wins). Values are left as texts: {@link parseSettings} checks them.
 * @param name the command's name in its usage line (`mpd orchestrator` when run by `mpd`)
 */
export function createCommand(name = 'mpd-orchestrator'): Command {
  return SETTINGS.command(
    name,
    'The mpd orchestrator: workers register with it over HTTP and send heartbeats; with --pipeline it runs a pipeline on them.\n' +
      'On start it prints one line to stdout, "mpd orchestrator listening on http://HOST:PORT" (https:// with --tls-cert; for 0.0.0.0 or ::, followed by the URLs of this machine\'s addresses); logs go to stderr.\n' +
      'SIGTERM or SIGINT stops it gracefully. Exit codes: 0 ok, 1 failure (or a failed pipeline), 2 invalid setting.',
  ).version(packageVersion(new URL('../../package.json', import.meta.url)), '-V, --version', 'print the version');
}

/** The texts a parsed command collected; MPD_ENV and MPD_SECRET_ENV give one entry per line. */
export function rawSettings(command: Command): RawSettings<typeof SETTINGS.rows> {
  return SETTINGS.raw(command);
}

/**
 * Checks the settings of a parsed command, or texts as given (absent ones take their defaults).
 * @param processEnv where `--env NAME` (without a value) reads NAME from. @default process.env
 * @throws OrchestratorConfigError (code `InvalidSetting`) naming the flag and the environment
 *   variable, e.g. `Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "abc"`.
 */
export function parseSettings(
  input: Command | RawSettings<typeof SETTINGS.rows>,
  processEnv: NodeJS.ProcessEnv = process.env,
): OrchestratorCliSettings {
  return SETTINGS.parse(input instanceof Command ? input : SETTINGS.withDefaults(input), processEnv);
}

/** `NAME=VALUE` sets a variable; `NAME` alone passes the orchestrator's own value on (when it has one). */
function environmentOf(entries: readonly string[], processEnv: NodeJS.ProcessEnv): Record<string, string> {
  const variables: Record<string, string> = {};
  for (const entry of entries) {
    const equals = entry.indexOf('=');
    if (equals >= 0) {
      variables[entry.slice(0, equals)] = entry.slice(equals + 1);
    } else if (processEnv[entry] !== undefined) {
      variables[entry] = processEnv[entry];
    }
  }
  return variables;
}
