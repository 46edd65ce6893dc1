import { bodyLimitText, commaSeparatedText, TLS_SETTING_NEEDS, tokenText } from '@mpd/server-kit';
import { Command, Option } from 'commander';
import type { LevelWithSilent } from 'pino';
import { z } from 'zod';
import { OrchestratorConfigError } from './errors.js';

/** The settings of the `mpd-orchestrator` command, validated. */
export interface OrchestratorCliConfig {
  port: number;
  host: string;
  heartbeatIntervalSeconds: number;
  heartbeatTimeoutMs: number;
  /** The pipeline file as given (not yet resolved against a directory). */
  pipeline: string | undefined;
  minWorkers: number;
  /** With `pipeline`: where to write the JSON run report (as given). */
  report: string | undefined;
  /** With `pipeline`: the module durations file, read before the run and updated after it (as given). */
  timings: string | undefined;
  /** Environment variables sent to every module (`ctx.env`). */
  environmentVariables: Record<string, string>;
  /** Secret environment variables sent to every module, masked in logs, errors and reports. */
  secretEnvironmentVariables: Record<string, string>;
  /** The working directory sent to every module; the worker's own when absent. */
  workdir: string | undefined;
  /** Run only modules of these categories. */
  categories: string[] | undefined;
  /** Skip modules of these categories. */
  ignoreCategories: string[] | undefined;
  /** Overrides the pipeline's failure mode. */
  failureMode: 'StopOnFirstFailure' | 'WaitForAll' | undefined;
  /** Overrides the pipeline's max parallelism. */
  maxParallelism: number | undefined;
  /** How long a ready module waits for a worker that can run it, in ms. */
  workerWaitMs: number;
  /** How many times a module lost with its worker is dispatched again. */
  maxLostAttempts: number;
  /** How long past a module's timeout the orchestrator waits for the worker's answer, in ms. */
  timeoutMarginMs: number;
  joinToken: string | undefined;
  adminToken: string | undefined;
  allowedWorkerHosts: string[] | undefined;
  corsOrigins: string[] | undefined;
  bodyLimit: string;
  /** Serve HTTPS: the certificate and key files (as given; {@link readTlsFiles} reads them). */
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  /** Require mutual TLS: client certificates must be signed by this CA file. */
  tlsClientCa: string | undefined;
  /** The CA file the certificates of `https://` workers must chain to. */
  tlsCa: string | undefined;
  /** The certificate and key files presented to workers that require mutual TLS. */
  tlsClientCert: string | undefined;
  tlsClientKey: string | undefined;
  rateLimits: { registerPerMinute: number; heartbeatPerMinute: number; authFailuresPerMinute: number };
  logLevel: LevelWithSilent;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Each setting's flag, environment variable, default and help text. */
const SETTINGS = {
  port: { flag: '--port <n>', env: 'MPD_PORT', default: '8080', help: 'port to listen on; 0 picks a free port' },
  host: {
    flag: '--host <h>',
    env: 'MPD_HOST',
    default: '0.0.0.0',
    help: 'address to listen on; 0.0.0.0 accepts workers on other machines',
  },
  heartbeatInterval: {
    flag: '--heartbeat-interval <seconds>',
    env: 'MPD_HEARTBEAT_INTERVAL',
    default: '30',
    help: 'how often workers are told to send a heartbeat',
  },
  heartbeatTimeout: {
    flag: '--heartbeat-timeout <seconds>',
    env: 'MPD_HEARTBEAT_TIMEOUT',
    default: '120',
    help: 'a worker without a heartbeat for this long is Offline; must exceed the interval',
  },
  pipeline: {
    flag: '--pipeline <file>',
    env: 'MPD_PIPELINE',
    default: undefined,
    help: 'run this pipeline file (default export definePipeline(...)) on the workers, then exit 0 on success or 1 on failure; without it the orchestrator only serves the registry',
  },
  minWorkers: {
    flag: '--min-workers <n>',
    env: 'MPD_MIN_WORKERS',
    default: '1',
    help: 'with --pipeline: how many workers to wait for before starting',
  },
  report: {
    flag: '--report <file>',
    env: 'MPD_REPORT',
    default: undefined,
    help: 'with --pipeline: write the JSON run report (every module, attempt, worker and timing) to this file',
  },
  timings: {
    flag: '--timings <file>',
    env: 'MPD_TIMINGS',
    default: undefined,
    help: 'with --pipeline: module durations of earlier runs, read before the run (the longest remaining work starts first) and updated after it; keep it between CI runs like a cache',
  },
  env: {
    flag: '--env <NAME=VALUE>',
    env: 'MPD_ENV',
    default: undefined,
    help: "with --pipeline: an environment variable for every module (ctx.env); repeat the flag for more. NAME alone passes the orchestrator's own value on. In MPD_ENV: one NAME=VALUE or NAME per line",
  },
  secretEnv: {
    flag: '--secret-env <NAME=VALUE>',
    env: 'MPD_SECRET_ENV',
    default: undefined,
    help: "with --pipeline: like --env, but the value is a secret: workers and the orchestrator mask it (***) in every log line, error and report. NAME alone passes the orchestrator's own value on (the safe way: values in flags show in ps)",
  },
  workdir: {
    flag: '--workdir <dir>',
    env: 'MPD_WORKDIR',
    default: undefined,
    help: "with --pipeline: the working directory of every module on its worker (default: the worker's current directory)",
  },
  categories: {
    flag: '--categories <list>',
    env: 'MPD_CATEGORIES',
    default: undefined,
    help: 'with --pipeline: run only modules of these comma-separated categories (the others are Skipped)',
  },
  ignoreCategories: {
    flag: '--ignore-categories <list>',
    env: 'MPD_IGNORE_CATEGORIES',
    default: undefined,
    help: 'with --pipeline: skip modules of these comma-separated categories',
  },
  failureMode: {
    flag: '--failure-mode <mode>',
    env: 'MPD_FAILURE_MODE',
    default: undefined,
    help: "with --pipeline: StopOnFirstFailure (cancel running modules, run only always-run ones) or WaitForAll (default: the pipeline's, else StopOnFirstFailure)",
  },
  maxParallelism: {
    flag: '--max-parallelism <n>',
    env: 'MPD_MAX_PARALLELISM',
    default: undefined,
    help: "with --pipeline: at most this many modules at once across the cluster (default: the pipeline's, else the workers' slots)",
  },
  workerWait: {
    flag: '--worker-wait <seconds>',
    env: 'MPD_WORKER_WAIT',
    default: '300',
    help: 'with --pipeline: how long a ready module waits for a live worker that can run it before it fails',
  },
  maxLostAttempts: {
    flag: '--max-lost-attempts <n>',
    env: 'MPD_MAX_LOST_ATTEMPTS',
    default: '3',
    help: 'with --pipeline: how many times a module whose worker was lost is dispatched again; a module that kills every worker it lands on fails after that',
  },
  timeoutMargin: {
    flag: '--timeout-margin <seconds>',
    env: 'MPD_TIMEOUT_MARGIN',
    default: '60',
    help: "with --pipeline: how long past a module's timeout to wait for its worker's answer before declaring it TimedOut",
  },
  joinToken: {
    flag: '--join-token <token>',
    env: 'MPD_JOIN_TOKEN',
    default: undefined,
    help: 'cluster join token workers register with; each then gets its own credential (prefer the environment variable: flags show in ps)',
  },
  adminToken: {
    flag: '--admin-token <token>',
    env: 'MPD_ADMIN_TOKEN',
    default: undefined,
    help: 'admin token for listing workers and unregistering or draining any worker',
  },
  allowedWorkerHosts: {
    flag: '--allowed-worker-hosts <list>',
    env: 'MPD_ALLOWED_WORKER_HOSTS',
    default: undefined,
    help: 'comma-separated hosts (or *.domain patterns) worker endpoints may name (default: any)',
  },
  corsOrigins: {
    flag: '--cors-origins <list>',
    env: 'MPD_CORS_ORIGINS',
    default: undefined,
    help: 'comma-separated origins allowed to call the API from a browser (default: none, CORS off)',
  },
  tlsCert: {
    flag: '--tls-cert <file>',
    env: 'MPD_TLS_CERT',
    default: undefined,
    help: 'serve HTTPS with this PEM certificate (chain); needs --tls-key',
  },
  tlsKey: {
    flag: '--tls-key <file>',
    env: 'MPD_TLS_KEY',
    default: undefined,
    help: 'the PEM private key of --tls-cert',
  },
  tlsClientCa: {
    flag: '--tls-client-ca <file>',
    env: 'MPD_TLS_CLIENT_CA',
    default: undefined,
    help: 'with --tls-cert: require mutual TLS, clients must present a certificate signed by this PEM CA',
  },
  tlsCa: {
    flag: '--tls-ca <file>',
    env: 'MPD_TLS_CA',
    default: undefined,
    help: "with --pipeline: the PEM CA that https:// workers' certificates must chain to (default: the system's trusted roots)",
  },
  tlsClientCert: {
    flag: '--tls-client-cert <file>',
    env: 'MPD_TLS_CLIENT_CERT',
    default: undefined,
    help: 'with --pipeline: the PEM certificate presented to workers that require mutual TLS; needs --tls-client-key',
  },
  tlsClientKey: {
    flag: '--tls-client-key <file>',
    env: 'MPD_TLS_CLIENT_KEY',
    default: undefined,
    help: 'the PEM private key of --tls-client-cert',
  },
  bodyLimit: {
    flag: '--body-limit <size>',
    env: 'MPD_BODY_LIMIT',
    default: '1mb',
    help: 'largest JSON request body accepted (e.g. 512kb, 1mb); larger ones get 413',
  },
  registerLimit: {
    flag: '--register-limit <n>',
    env: 'MPD_REGISTER_LIMIT',
    default: '10000',
    help: 'registrations per client address per minute',
  },
  heartbeatLimit: {
    flag: '--heartbeat-limit <n>',
    env: 'MPD_HEARTBEAT_LIMIT',
    default: '600',
    help: 'heartbeats per worker (by its credential; heartbeats without one count per client address) per minute',
  },
  authFailureLimit: {
    flag: '--auth-failure-limit <n>',
    env: 'MPD_AUTH_FAILURE_LIMIT',
    default: '100',
    help: 'failed authentications per client address per minute before it gets 429',
  },
  logLevel: {
    flag: '--log-level <level>',
    env: 'MPD_LOG_LEVEL',
    default: 'info',
    help: `log level of the logs on stderr: ${LOG_LEVELS.join(', ')}`,
  },
} as const;

type SettingKey = keyof typeof SETTINGS;
/**
 * The raw strings of each setting, as commander collected them (flag, env or default);
 * `env` is a list, one entry per `--env` flag or per line of MPD_ENV.
 */
export type RawSettings = Partial<Record<Exclude<SettingKey, 'env' | 'secretEnv'>, string>> & {
  env?: string[];
  secretEnv?: string[];
};

/** `--port (MPD_PORT)`: how messages name a setting. */
export function settingName(key: SettingKey): string {
  const { flag, env } = SETTINGS[key];
  return `${flag.split(' ')[0]} (${env})`;
}

const integerText = (min: number, max: number) =>
  z
    .string()
    .refine((text) => /^\d+$/.test(text) && Number(text) >= min && Number(text) <= max, {
      message: `must be an integer from ${min} to ${max}`,
    })
    .transform(Number);

const secondsText = z
  .string()
  .refine((text) => /^\d+(\.\d+)?$/.test(text) && Number(text) > 0 && Number(text) <= 86_400, {
    message: 'must be a number of seconds above 0 and at most 86400',
  })
  .transform(Number);

const nameList = commaSeparatedText.refine((names) => names.length > 0, {
  message: 'must be a comma-separated list of names',
});

const filePath = z.string().min(1, 'must be a file path, not empty');

const envEntries = z.array(
  z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*(=[\s\S]*)?$/, 'must be NAME=VALUE or NAME, where NAME is letters, digits and _'),
);

const rawSettingsSchema = z
  .object({
    port: integerText(0, 65_535),
    host: z.string().regex(/^\S+$/, 'must be a host name or IP address without spaces'),
    heartbeatInterval: secondsText,
    heartbeatTimeout: secondsText,
    pipeline: z.string().min(1, 'must be a file path, not empty').optional(),
    minWorkers: integerText(1, 1024),
    report: z.string().min(1, 'must be a file path, not empty').optional(),
    timings: z.string().min(1, 'must be a file path, not empty').optional(),
    env: envEntries.optional(),
    secretEnv: envEntries.optional(),
    workdir: z.string().min(1, 'must be a directory path, not empty').optional(),
    categories: nameList.optional(),
    ignoreCategories: nameList.optional(),
    failureMode: z
      .enum(['StopOnFirstFailure', 'WaitForAll'], {
        errorMap: () => ({ message: 'must be StopOnFirstFailure or WaitForAll' }),
      })
      .optional(),
    maxParallelism: integerText(1, 100_000).optional(),
    workerWait: secondsText,
    maxLostAttempts: integerText(0, 100),
    timeoutMargin: secondsText,
    joinToken: tokenText.optional(),
    adminToken: tokenText.optional(),
    allowedWorkerHosts: nameList.optional(),
    corsOrigins: nameList.optional(),
    tlsCert: filePath.optional(),
    tlsKey: filePath.optional(),
    tlsClientCa: filePath.optional(),
    tlsCa: filePath.optional(),
    tlsClientCert: filePath.optional(),
    tlsClientKey: filePath.optional(),
    bodyLimit: bodyLimitText,
    registerLimit: integerText(1, 10_000_000),
    heartbeatLimit: integerText(1, 10_000_000),
    authFailureLimit: integerText(1, 10_000_000),
    logLevel: z.enum(LOG_LEVELS, { errorMap: () => ({ message: `must be one of ${LOG_LEVELS.join(', ')}` }) }),
  })
  .superRefine((settings, ctx) => {
    // Settings that need others: a certificate needs its key (and back), mutual TLS needs TLS.
    for (const [key, needs] of TLS_SETTING_NEEDS) {
      const missing = needs.filter((other) => settings[other] === undefined);
      if (settings[key] !== undefined && missing.length > 0) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: [key],
          message: `needs ${missing.map(settingName).join(' and ')} too`,
        });
      }
    }
    if (settings.heartbeatTimeout <= settings.heartbeatInterval) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['heartbeatTimeout'],
        message: `must be greater than ${settingName('heartbeatInterval')} (${settings.heartbeatInterval})`,
      });
    }
  });

/**
 * Validates the raw settings (defaults filled in by commander).
 * @throws OrchestratorConfigError (code `InvalidSetting`) naming the flag and the environment
 *   variable, e.g. `Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "abc"`.
 */
export function parseSettings(raw: RawSettings, processEnv: NodeJS.ProcessEnv = process.env): OrchestratorCliConfig {
  const withDefaults = Object.fromEntries(
    (Object.keys(SETTINGS) as SettingKey[]).map((key) => [key, raw[key] ?? SETTINGS[key].default]),
  );
  const result = rawSettingsSchema.safeParse(withDefaults);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = issue.path[0] as SettingKey;
    const name = settingName(key);
    const value =
      key === 'env'
        ? raw.env?.[issue.path[1] as number]
        : key === 'secretEnv'
          ? `an entry of ${String(raw.secretEnv?.[issue.path[1] as number] ?? '').length} characters`
          : withDefaults[key];
    throw new OrchestratorConfigError(
      'InvalidSetting',
      name,
      `Invalid setting ${name}: ${issue.message}, got ${
        key === 'secretEnv'
          ? String(value)
          : key === 'joinToken' || key === 'adminToken'
            ? `a value of ${String(value ?? '').length} characters`
            : JSON.stringify(value ?? '')
      }`,
      { cause: result.error },
    );
  }
  const settings = result.data;
  return {
    port: settings.port,
    host: settings.host,
    heartbeatIntervalSeconds: settings.heartbeatInterval,
    heartbeatTimeoutMs: Math.round(settings.heartbeatTimeout * 1000),
    pipeline: settings.pipeline,
    minWorkers: settings.minWorkers,
    report: settings.report,
    timings: settings.timings,
    environmentVariables: environmentOf(settings.env ?? [], processEnv),
    secretEnvironmentVariables: environmentOf(settings.secretEnv ?? [], processEnv),
    workdir: settings.workdir,
    categories: settings.categories,
    ignoreCategories: settings.ignoreCategories,
    failureMode: settings.failureMode,
    maxParallelism: settings.maxParallelism,
    workerWaitMs: Math.round(settings.workerWait * 1000),
    maxLostAttempts: settings.maxLostAttempts,
    timeoutMarginMs: Math.round(settings.timeoutMargin * 1000),
    joinToken: settings.joinToken,
    adminToken: settings.adminToken,
    allowedWorkerHosts: settings.allowedWorkerHosts,
    corsOrigins: settings.corsOrigins,
    bodyLimit: settings.bodyLimit,
    tlsCert: settings.tlsCert,
    tlsKey: settings.tlsKey,
    tlsClientCa: settings.tlsClientCa,
    tlsCa: settings.tlsCa,
    tlsClientCert: settings.tlsClientCert,
    tlsClientKey: settings.tlsClientKey,
    rateLimits: {
      registerPerMinute: settings.registerLimit,
      heartbeatPerMinute: settings.heartbeatLimit,
      authFailuresPerMinute: settings.authFailureLimit,
    },
    logLevel: settings.logLevel,
  };
}

/** The raw settings of a parsed command; MPD_ENV and MPD_SECRET_ENV give one entry per line. */
export function rawSettings(command: Command): RawSettings {
  const raw = { ...command.opts<RawSettings>() };
  for (const key of ['env', 'secretEnv'] as const) {
    const entries = raw[key];
    if (command.getOptionValueSource(key) === 'env' && entries) {
      raw[key] = entries.flatMap((text) => text.split(/\r?\n/)).filter((line) => line.trim() !== '');
    }
  }
  return raw;
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

/**
 * The `mpd-orchestrator` command line. Every flag also reads an environment variable
 * (the flag wins). Values are left as strings: {@link parseSettings} validates them.
 */
export function createCommand(): Command {
  const command = new Command('mpd-orchestrator')
    .description(
      'The mpd orchestrator: workers register with it over HTTP and send heartbeats; with --pipeline it runs a pipeline on them.\n' +
        'On start it prints one line to stdout, "mpd orchestrator listening on http://HOST:PORT" (https:// with --tls-cert); logs go to stderr.\n' +
        'SIGTERM or SIGINT stops it gracefully. Exit codes: 0 ok, 1 failure (or a failed pipeline), 2 invalid setting.',
    )
    .helpOption('-h, --help', 'show this help');
  for (const [key, setting] of Object.entries(SETTINGS)) {
    const option = new Option(setting.flag, setting.help).env(setting.env);
    if (setting.default !== undefined) option.default(setting.default);
    // Repeatable: each --env / --secret-env adds an entry (see rawSettings for the variables).
    if (key === 'env' || key === 'secretEnv')
      option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    command.addOption(option);
  }
  return command;
}
