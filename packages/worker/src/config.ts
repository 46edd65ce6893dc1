import { bodyLimitText, commaSeparatedText, TLS_SETTING_NEEDS, tokenText } from '@mpd/server-kit';
import { Command, Option } from 'commander';
import { z } from 'zod';
import { WorkerConfigError } from './errors.js';

/** A flag, its environment variable, and how its text is validated. */
interface Setting<T extends z.ZodTypeAny> {
  flag: string;
  env: string;
  schema: T;
}

const integer = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `must be an integer from ${min} to ${max}`)
    .transform(Number)
    .pipe(
      z
        .number()
        .int()
        .min(min, `must be an integer from ${min} to ${max}`)
        .max(max, `must be an integer from ${min} to ${max}`),
    );
const list = commaSeparatedText.pipe(
  z.array(z.string().regex(/^[\w.+-]{1,128}$/, 'must be a comma-separated list of names (letters, digits, . _ + -)')),
);
const url = z
  .string()
  .trim()
  .url('must be a URL such as http://127.0.0.1:8080')
  .refine((value) => /^https?:\/\//i.test(value), 'must be an http:// or https:// URL');

const filePath = z.string().trim().min(1, 'must be a file path');

/** Settings whose values are secrets: never echoed in messages. */
const SECRET_SETTINGS = new Set(['joinToken', 'token']);

const settings = {
  port: { flag: '--port', env: 'MPD_PORT', schema: integer(0, 65535) },
  host: { flag: '--host', env: 'MPD_HOST', schema: z.string().trim().min(1, 'must not be empty') },
  orchestrator: { flag: '--orchestrator', env: 'MPD_ORCHESTRATOR_URL', schema: url },
  id: {
    flag: '--id',
    env: 'MPD_WORKER_ID',
    schema: z.string().regex(/^[\x21-\x7e]{1,256}$/, 'must be 1-256 printable characters without spaces'),
  },
  endpoint: { flag: '--endpoint', env: 'MPD_ENDPOINT', schema: url },
  tags: { flag: '--tags', env: 'MPD_TAGS', schema: list },
  tools: { flag: '--tools', env: 'MPD_TOOLS', schema: list },
  maxParallel: { flag: '--max-parallel', env: 'MPD_MAX_PARALLEL', schema: integer(1, 1024) },
  pipeline: { flag: '--pipeline', env: 'MPD_PIPELINE', schema: z.string().trim().min(1, 'must be a file path') },
  joinToken: { flag: '--join-token', env: 'MPD_JOIN_TOKEN', schema: tokenText },
  credentialFile: { flag: '--credential-file', env: 'MPD_CREDENTIAL_FILE', schema: filePath },
  bodyLimit: { flag: '--body-limit', env: 'MPD_BODY_LIMIT', schema: bodyLimitText },
  token: { flag: '--token', env: 'MPD_WORKER_TOKEN', schema: tokenText },
  tlsCert: { flag: '--tls-cert', env: 'MPD_TLS_CERT', schema: filePath },
  tlsKey: { flag: '--tls-key', env: 'MPD_TLS_KEY', schema: filePath },
  tlsClientCa: { flag: '--tls-client-ca', env: 'MPD_TLS_CLIENT_CA', schema: filePath },
  tlsCa: { flag: '--tls-ca', env: 'MPD_TLS_CA', schema: filePath },
  tlsClientCert: { flag: '--tls-client-cert', env: 'MPD_TLS_CLIENT_CERT', schema: filePath },
  tlsClientKey: { flag: '--tls-client-key', env: 'MPD_TLS_CLIENT_KEY', schema: filePath },
  logLevel: {
    flag: '--log-level',
    env: 'MPD_LOG_LEVEL',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      errorMap: () => ({ message: 'must be one of fatal, error, warn, info, debug, trace, silent' }),
    }),
  },
} satisfies Record<string, Setting<z.ZodTypeAny>>;

type Settings = typeof settings;
/** The worker's validated command-line settings. */
export type WorkerCliConfig = { port: number; host: string; logLevel: string } & {
  [K in Exclude<keyof Settings, 'port' | 'host' | 'logLevel'>]?: z.output<Settings[K]['schema']>;
};

/** The `mpd-worker` command: flags with their environment variables and help. */
export function workerCommand(): Command {
  const option = (key: keyof Settings, argument: string, description: string, defaultValue?: string) => {
    const { flag, env } = settings[key];
    const result = new Option(`${flag} <${argument}>`, description).env(env);
    return defaultValue === undefined ? result : result.default(defaultValue);
  };
  return new Command('mpd-worker')
    .description('Run an mpd worker: it registers with the orchestrator and executes the pipeline modules it is sent.')
    .addOption(option('port', 'port', 'port to listen on; 0 picks a free port', '9000'))
    .addOption(option('host', 'address', 'address to listen on', '0.0.0.0'))
    .addOption(option('orchestrator', 'url', 'orchestrator base URL to register with, e.g. http://127.0.0.1:8080'))
    .addOption(option('id', 'id', 'worker id (default: worker-<hostname>-<random>)'))
    .addOption(
      option(
        'endpoint',
        'url',
        'URL the orchestrator calls this worker at (default: http://<hostname>:<port>, https:// with --tls-cert)',
      ),
    )
    .addOption(option('tags', 'list', 'comma-separated tags advertised to the orchestrator, e.g. gpu,high-memory'))
    .addOption(option('tools', 'list', 'comma-separated tools advertised (default: known tools found on PATH)'))
    .addOption(option('maxParallel', 'n', 'how many modules may run at once (default: number of CPUs)'))
    .addOption(option('pipeline', 'file', 'pipeline file (ES module or .ts) whose modules this worker runs'))
    .addOption(
      option(
        'joinToken',
        'token',
        "the orchestrator's cluster join token (prefer the environment variable: flags show in ps)",
      ),
    )
    .addOption(
      option(
        'credentialFile',
        'file',
        'keep the credential the orchestrator gives this worker in this file (mode 0600), so that a worker restarted after a crash registers again at once',
      ),
    )
    .addOption(
      option(
        'token',
        'token',
        'a token the orchestrator may call this worker with, besides the credential it gets at registration',
      ),
    )
    .addOption(option('tlsCert', 'file', 'serve HTTPS with this PEM certificate (chain); needs --tls-key'))
    .addOption(option('tlsKey', 'file', 'the PEM private key of --tls-cert'))
    .addOption(
      option(
        'tlsClientCa',
        'file',
        'with --tls-cert: require mutual TLS, callers must present a certificate signed by this PEM CA',
      ),
    )
    .addOption(
      option(
        'tlsCa',
        'file',
        "the PEM CA an https:// orchestrator's certificate must chain to (default: system roots)",
      ),
    )
    .addOption(
      option(
        'tlsClientCert',
        'file',
        'the PEM certificate presented to an orchestrator that requires mutual TLS; needs --tls-client-key',
      ),
    )
    .addOption(option('tlsClientKey', 'file', 'the PEM private key of --tls-client-cert'))
    .addOption(
      option(
        'bodyLimit',
        'size',
        'largest JSON request body accepted; execute carries dependency results (default: 100mb)',
      ),
    )
    .addOption(option('logLevel', 'level', 'log level: fatal, error, warn, info, debug, trace, silent', 'info'))
    .helpOption('-h, --help', 'show this help')
    .showHelpAfterError()
    .allowExcessArguments(false);
}

/**
 * Validates the raw settings commander collected; throws {@link WorkerConfigError} naming
 * the flag and environment variable of the first bad setting.
 */
export function parseWorkerConfig(raw: Record<string, unknown>): WorkerCliConfig {
  const config: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(settings) as [keyof Settings, Setting<z.ZodTypeAny>][]) {
    const value = raw[key];
    if (value === undefined) continue;
    const parsed = setting.schema.safeParse(value);
    if (!parsed.success) {
      throw new WorkerConfigError(
        `Invalid setting ${setting.flag} (${setting.env}): ${parsed.error.issues[0]?.message ?? 'invalid'}, got ${
          SECRET_SETTINGS.has(key) ? `a value of ${String(value).length} characters` : JSON.stringify(value)
        }`,
      );
    }
    config[key] = parsed.data;
  }
  // Settings that need others: a certificate needs its key (and back), mutual TLS needs TLS.
  for (const [key, needs] of TLS_SETTING_NEEDS) {
    const missing = needs.filter((other) => config[other] === undefined);
    if (config[key] !== undefined && missing.length > 0) {
      const name = (k: keyof Settings) => `${settings[k].flag} (${settings[k].env})`;
      throw new WorkerConfigError(
        `Invalid setting ${name(key)}: needs ${missing.map(name).join(' and ')} too, got ${JSON.stringify(config[key])}`,
      );
    }
  }
  return config as WorkerCliConfig;
}
