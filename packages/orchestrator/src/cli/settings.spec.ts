import { afterEach, describe, expect, it, vi } from 'vitest';
import { OrchestratorConfigError } from '../errors.js';
import { createCommand, parseSettings, rawSettings } from './settings.js';

describe('parseSettings', () => {
  it('fills in the defaults', () => {
    expect(parseSettings({})).toEqual({
      port: 8080,
      host: '0.0.0.0',
      heartbeatIntervalSeconds: 30,
      heartbeatTimeoutMs: 120_000,
      pipeline: undefined,
      minWorkers: 1,
      environmentVariables: {},
      secretEnvironmentVariables: {},
      workerWaitMs: 300_000,
      maxLostAttempts: 3,
      timeoutMarginMs: 60_000,
      maxResultBytes: 16 * 1024 * 1024,
      rateLimits: {
        registerPerMinute: 10_000,
        heartbeatPerMinute: 600,
        authFailuresPerMinute: 100,
        failedRequestsPerMinute: 1_000,
      },
      bodyLimit: '1mb',
      offlineRetentionMs: 600_000,
      maxWorkers: 10_000,
      maxPipelines: 64,
      artifactsDir: '.mpd/artifact-store',
      maxArtifactBytes: 2 * 1024 ** 3,
      artifactStorePathStyle: false,
      artifactRetentionMs: 7 * 24 * 3_600_000,
      logLevel: 'info',
    });
  });

  it('takes the run options: categories, failure mode, max parallelism, worker wait', () => {
    expect(
      parseSettings({
        categories: 'build, test',
        ignoreCategories: 'slow',
        failureMode: 'WaitForAll',
        maxParallelism: '4',
        workerWaitMs: '2.5',
      }),
    ).toMatchObject({
      runOnlyCategories: ['build', 'test'],
      ignoreCategories: ['slow'],
      failureMode: 'WaitForAll',
      maxParallelism: 4,
      workerWaitMs: 2_500,
    });
  });

  it("builds the modules' environment from --env NAME=VALUE and NAME (passed on from its own)", () => {
    const config = parseSettings({ env: ['CI=true', 'LIST=a,b=c', 'BUILD_NUMBER', 'NOT_SET'] }, { BUILD_NUMBER: '42' });
    expect(config.environmentVariables).toEqual({ CI: 'true', LIST: 'a,b=c', BUILD_NUMBER: '42' });
  });

  it('takes repeated --env flags, or one entry per line of MPD_ENV', () => {
    const fromFlags = createCommand().parse(['--env', 'A=1', '--env', 'B=2,3'], { from: 'user' });
    expect(rawSettings(fromFlags).env).toEqual(['A=1', 'B=2,3']);
    process.env.MPD_ENV = 'A=1\nB=two words\n\n';
    try {
      expect(rawSettings(createCommand().parse([], { from: 'user' })).env).toEqual(['A=1', 'B=two words']);
    } finally {
      delete process.env.MPD_ENV;
    }
  });

  it('takes the TLS files as given, each with its flag or environment variable', () => {
    expect(
      parseSettings({
        tlsCert: 'server.crt',
        tlsKey: 'server.key',
        tlsClientCa: 'clients-ca.crt',
        tlsCa: '/etc/mpd/ca.crt',
        tlsClientCert: 'client.crt',
        tlsClientKey: 'client.key',
      }),
    ).toMatchObject({
      tlsCert: 'server.crt',
      tlsKey: 'server.key',
      tlsClientCa: 'clients-ca.crt',
      tlsCa: '/etc/mpd/ca.crt',
      tlsClientCert: 'client.crt',
      tlsClientKey: 'client.key',
    });
    const names = createCommand().options.map((option) => [option.long, option.envVar]);
    expect(names).toEqual(
      expect.arrayContaining([
        ['--tls-cert', 'MPD_TLS_CERT'],
        ['--tls-key', 'MPD_TLS_KEY'],
        ['--tls-client-ca', 'MPD_TLS_CLIENT_CA'],
        ['--tls-ca', 'MPD_TLS_CA'],
        ['--tls-client-cert', 'MPD_TLS_CLIENT_CERT'],
        ['--tls-client-key', 'MPD_TLS_CLIENT_KEY'],
      ]),
    );
    // The CA for workers alone is fine: it verifies https:// workers without a client certificate.
    expect(parseSettings({ tlsCa: 'ca.crt' })).toMatchObject({ tlsCa: 'ca.crt', tlsCert: undefined });
  });

  it('converts the raw strings', () => {
    expect(
      parseSettings({
        port: '0',
        host: '127.0.0.1',
        heartbeatIntervalSeconds: '0.5',
        heartbeatTimeoutMs: '2.25',
        pipeline: 'ci.pipeline.ts',
        minWorkers: '3',
        workdir: '/srv/build',
        logLevel: 'silent',
        artifactRetentionMs: '1.5d',
        artifactStorePathStyle: '0',
      }),
    ).toEqual({
      workingDirectory: '/srv/build',
      environmentVariables: {},
      secretEnvironmentVariables: {},
      workerWaitMs: 300_000,
      maxLostAttempts: 3,
      timeoutMarginMs: 60_000,
      maxResultBytes: 16 * 1024 * 1024,
      rateLimits: {
        registerPerMinute: 10_000,
        heartbeatPerMinute: 600,
        authFailuresPerMinute: 100,
        failedRequestsPerMinute: 1_000,
      },
      bodyLimit: '1mb',
      offlineRetentionMs: 600_000,
      maxWorkers: 10_000,
      maxPipelines: 64,
      artifactsDir: '.mpd/artifact-store',
      maxArtifactBytes: 2 * 1024 ** 3,
      artifactStorePathStyle: false,
      artifactRetentionMs: 36 * 3_600_000,
      port: 0,
      host: '127.0.0.1',
      heartbeatIntervalSeconds: 0.5,
      heartbeatTimeoutMs: 2_250,
      pipeline: 'ci.pipeline.ts',
      minWorkers: 3,
      logLevel: 'silent',
    });
  });

  it.each([
    [{ port: 'abc' }, 'Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "abc"'],
    [{ port: '65536' }, 'Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "65536"'],
    [{ port: '-1' }, 'Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "-1"'],
    [{ host: 'a b' }, 'Invalid setting --host (MPD_HOST): must be a host name or IP address without spaces, got "a b"'],
    [
      { allowedWorkerHosts: '*.ci.internal,10.0.0.0/33' },
      `Invalid setting --allowed-worker-hosts (MPD_ALLOWED_WORKER_HOSTS): '10.0.0.0/33' is no address range (such as 10.0.0.0/8 or fd00::/8), got "*.ci.internal,10.0.0.0/33"`,
    ],
    [
      { heartbeatIntervalSeconds: '0' },
      'Invalid setting --heartbeat-interval (MPD_HEARTBEAT_INTERVAL): must be a number of seconds above 0 and at most 86400, got "0"',
    ],
    [
      { heartbeatTimeoutMs: '30' },
      'Invalid setting --heartbeat-timeout (MPD_HEARTBEAT_TIMEOUT): must be greater than --heartbeat-interval (MPD_HEARTBEAT_INTERVAL) (30), got "30"',
    ],
    [
      { minWorkers: '0' },
      'Invalid setting --min-workers (MPD_MIN_WORKERS): must be an integer from 1 to 1024, got "0"',
    ],
    [{ pipeline: '' }, 'Invalid setting --pipeline (MPD_PIPELINE): must be a file path, not empty, got ""'],
    [
      { failureMode: 'Sometimes' },
      'Invalid setting --failure-mode (MPD_FAILURE_MODE): must be StopOnFirstFailure or WaitForAll, got "Sometimes"',
    ],
    [
      { maxParallelism: '0' },
      'Invalid setting --max-parallelism (MPD_MAX_PARALLELISM): must be an integer from 1 to 100000, got "0"',
    ],
    [
      { categories: ' , ' },
      'Invalid setting --categories (MPD_CATEGORIES): must be a comma-separated list of names, got " , "',
    ],
    [
      { env: ['OK=1', '1BAD=x'] },
      'Invalid setting --env (MPD_ENV): must be NAME=VALUE or NAME, where NAME is letters, digits and _, got "1BAD=x"',
    ],
    [
      { tlsCert: 'server.crt' },
      'Invalid setting --tls-cert (MPD_TLS_CERT): needs --tls-key (MPD_TLS_KEY) too, got "server.crt"',
    ],
    [
      { tlsKey: 'server.key' },
      'Invalid setting --tls-key (MPD_TLS_KEY): needs --tls-cert (MPD_TLS_CERT) too, got "server.key"',
    ],
    [
      { tlsClientCa: 'ca.crt' },
      'Invalid setting --tls-client-ca (MPD_TLS_CLIENT_CA): needs --tls-cert (MPD_TLS_CERT) and --tls-key (MPD_TLS_KEY) too, got "ca.crt"',
    ],
    [
      { tlsCa: 'ca.crt', tlsClientCert: 'client.crt' },
      'Invalid setting --tls-client-cert (MPD_TLS_CLIENT_CERT): needs --tls-client-key (MPD_TLS_CLIENT_KEY) too, got "client.crt"',
    ],
    [
      { tlsClientKey: 'client.key' },
      'Invalid setting --tls-client-key (MPD_TLS_CLIENT_KEY): needs --tls-client-cert (MPD_TLS_CLIENT_CERT) too, got "client.key"',
    ],
    [{ tlsCa: '' }, 'Invalid setting --tls-ca (MPD_TLS_CA): must be a file path, not empty, got ""'],
    [
      { artifactRetentionMs: '7 days' },
      'Invalid setting --artifact-retention (MPD_ARTIFACT_RETENTION): must be 0 or a number with a unit: 30s, 90m, 12h, 7d, got "7 days"',
    ],
    [
      { artifactStore: 'https://bucket.s3.amazonaws.com' },
      `Invalid setting --artifact-store (MPD_ARTIFACT_STORE): must be s3://bucket or s3://bucket/prefix (a bucket of 3 to 63 of a-z, 0-9, '.' and '-'; no '.' or '..' in the prefix), got "https://bucket.s3.amazonaws.com"`,
    ],
    [
      { artifactStore: 's3://Upper_Case/runs' },
      `Invalid setting --artifact-store (MPD_ARTIFACT_STORE): must be s3://bucket or s3://bucket/prefix (a bucket of 3 to 63 of a-z, 0-9, '.' and '-'; no '.' or '..' in the prefix), got "s3://Upper_Case/runs"`,
    ],
    [
      { artifactStoreEndpoint: 'http://127.0.0.1:9000' },
      'Invalid setting --artifact-store-endpoint (MPD_ARTIFACT_STORE_ENDPOINT): needs --artifact-store (MPD_ARTIFACT_STORE) too, got "http://127.0.0.1:9000"',
    ],
    [
      { artifactStorePathStyle: 'maybe' },
      'Invalid setting --artifact-store-path-style (MPD_ARTIFACT_STORE_PATH_STYLE): must be true or false (1 or 0, yes or no), or the flag alone, got "maybe"',
    ],
    [
      { logLevel: 'loud' },
      'Invalid setting --log-level (MPD_LOG_LEVEL): must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    ],
  ])('refuses %j naming the setting', (raw, message) => {
    let error: unknown;
    try {
      parseSettings(raw);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(OrchestratorConfigError);
    expect((error as OrchestratorConfigError).code).toBe('InvalidSetting');
    expect((error as OrchestratorConfigError).message).toBe(message);
  });
});

describe('parseSettings: texts as the worker reads them', () => {
  it('trims numbers, hosts and paths, as the worker does', () => {
    expect(
      parseSettings({ port: ' 80', host: ' 127.0.0.1 ', minWorkers: '2 ', pipeline: ' ci.pipeline.ts ' }),
    ).toMatchObject({ port: 80, host: '127.0.0.1', minWorkers: 2, pipeline: 'ci.pipeline.ts' });
    expect(() => parseSettings({ pipeline: '  ' })).toThrow(
      'Invalid setting --pipeline (MPD_PIPELINE): must be a file path, not empty, got "  "',
    );
  });

  it('refuses an empty host as the worker does', () => {
    expect(() => parseSettings({ host: ' ' })).toThrow('Invalid setting --host (MPD_HOST): must not be empty, got " "');
  });

  it('names the setting in the error, by the name it was given with', () => {
    expect(() => parseSettings({ port: 'abc' })).toThrow(
      expect.objectContaining({ code: 'InvalidSetting', setting: '--port (MPD_PORT)' }),
    );
    expect(() => parseSettings({ categories: ' , ' })).toThrow(
      expect.objectContaining({ setting: '--categories (MPD_CATEGORIES)' }),
    );
  });
});

describe('renamed settings', () => {
  afterEach(() => vi.unstubAllEnvs());

  /** Parses `args` with the real command, with only the variables of `env` among the command's set. */
  const fromCommandLine = (args: string[], env: Record<string, string> = {}) => {
    const command = createCommand().exitOverride();
    for (const { envVar } of command.options) if (envVar) vi.stubEnv(envVar, env[envVar]);
    return parseSettings(command.parse(args, { from: 'user' }));
  };

  it.each([
    [
      'runOnlyCategories',
      '--run-only-categories',
      'MPD_RUN_ONLY_CATEGORIES',
      '--categories',
      'MPD_CATEGORIES',
      ['build', 'test'],
    ],
    ['workingDirectory', '--working-directory', 'MPD_WORKING_DIRECTORY', '--workdir', 'MPD_WORKDIR', '/srv/build'],
  ] as const)('%s: %s and %s, and the old %s and %s still', (key, flag, env, oldFlag, oldEnv, value) => {
    const text = Array.isArray(value) ? value.join(',') : String(value);
    expect(fromCommandLine([flag, text])[key]).toEqual(value);
    expect(fromCommandLine([], { [env]: text })[key]).toEqual(value);
    expect(fromCommandLine([oldFlag, text])[key]).toEqual(value);
    expect(fromCommandLine([], { [oldEnv]: text })[key]).toEqual(value);
    // A flag wins over a variable, and a new name over an old one.
    expect(fromCommandLine([oldFlag, text], { [env]: 'other' })[key]).toEqual(value);
    expect(fromCommandLine([flag, text, oldFlag, 'other'])[key]).toEqual(value);
    expect(fromCommandLine([], { [env]: text, [oldEnv]: 'other' })[key]).toEqual(value);
  });

  it('names the flag and the variable a refused value was given by, old or new', () => {
    expect(() => fromCommandLine(['--run-only-categories', ' , '])).toThrow(
      'Invalid setting --run-only-categories (MPD_RUN_ONLY_CATEGORIES): must be a comma-separated list of names, got " , "',
    );
    expect(() => fromCommandLine([], { MPD_CATEGORIES: ' , ' })).toThrow(
      'Invalid setting --categories (MPD_CATEGORIES): must be a comma-separated list of names, got " , "',
    );
    expect(() => fromCommandLine(['--workdir', ''])).toThrow(
      'Invalid setting --workdir (MPD_WORKDIR): must be a directory path, not empty, got ""',
    );
  });

  it('--help lists the old names as deprecated, each with its variable', () => {
    // Wide enough that no line wraps.
    const help = createCommand().configureHelp({ helpWidth: 1000 }).helpInformation();
    expect(help).toMatch(/--run-only-categories <list> +with --pipeline: run only modules/);
    expect(help).toMatch(/--working-directory <dir> +with --pipeline: the working directory/);
    const deprecated = help.slice(help.indexOf('Deprecated (old names, still read):'));
    expect(deprecated).toMatch(/--workdir <dir> +the old name of --working-directory \(env: MPD_WORKDIR\)/);
    expect(deprecated).toMatch(/--categories <list> +the old name of --run-only-categories \(env: MPD_CATEGORIES\)/);
  });

  it('names the settings like the options they become: worker wait, timeout margin, ignored categories, result size', () => {
    expect(parseSettings({ maxResultBytes: '512kb' })).toMatchObject({ maxResultBytes: 512 * 1024 });
    expect(parseSettings({ workerWaitMs: '2', timeoutMarginMs: '0.5', ignoreCategories: 'slow' })).toMatchObject({
      workerWaitMs: 2_000,
      timeoutMarginMs: 500,
      ignoreCategories: ['slow'],
    });
  });
});
