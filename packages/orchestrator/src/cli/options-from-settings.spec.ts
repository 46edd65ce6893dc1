import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_ORCHESTRATOR_OPTIONS,
  DEFAULT_START_OPTIONS,
  resolveOrchestratorOptions,
} from '../orchestrator-options.js';
import { DEFAULT_RUN_OPTIONS } from '../runner/run-defaults.js';
import { runOptions, serverOptions } from './options-from-settings.js';
import { parseSettings } from './settings.js';

const noTls = { server: undefined, workers: undefined };

describe('serverOptions', () => {
  it('hands the defaults on, leaving out what is not set', () => {
    expect(serverOptions(parseSettings({}), noTls, '/home/ci')).toStrictEqual({
      port: 8080,
      host: '0.0.0.0',
      heartbeatIntervalSeconds: 30,
      heartbeatTimeoutMs: 120_000,
      bodyLimit: '1mb',
      offlineRetentionMs: 600_000,
      maxWorkers: 10_000,
      maxPipelines: 64,
      // Relative to the command's directory, as every path setting is.
      artifactsDir: '/home/ci/.mpd/artifact-store',
      maxArtifactBytes: 2 * 1024 ** 3,
      artifactStorePathStyle: false,
      artifactRetentionMs: 7 * 24 * 3_600_000,
      rateLimits: {
        registerPerMinute: 10_000,
        heartbeatPerMinute: 600,
        authFailuresPerMinute: 100,
        failedRequestsPerMinute: 1_000,
      },
    });
  });

  it('hands every server setting on under its option name, with the TLS files read', () => {
    const settings = parseSettings({
      joinToken: 'join-token-0123456789',
      adminToken: 'admin-token-0123456789',
      allowedWorkerHosts: 'w1,*.ci.internal',
      corsOrigins: 'https://ci.example.com',
      registerPerMinute: '5',
      offlineRetentionMs: '30',
      maxWorkers: '50',
      maxPipelines: '2',
      artifactStore: 's3://ci-artifacts/mpd',
      artifactStoreEndpoint: 'http://minio.internal:9000',
      artifactStoreRegion: 'eu-west-1',
      artifactStorePathStyle: 'yes',
      artifactRetentionMs: '12h',
    });
    const tls = { server: { cert: 'CERT', key: 'KEY' }, workers: undefined };
    expect(serverOptions(settings, tls, '/home/ci')).toMatchObject({
      joinToken: 'join-token-0123456789',
      adminToken: 'admin-token-0123456789',
      allowedWorkerHosts: ['w1', '*.ci.internal'],
      corsOrigins: ['https://ci.example.com'],
      rateLimits: {
        registerPerMinute: 5,
        heartbeatPerMinute: 600,
        authFailuresPerMinute: 100,
        failedRequestsPerMinute: 1_000,
      },
      offlineRetentionMs: 30_000,
      maxWorkers: 50,
      maxPipelines: 2,
      artifactStore: 's3://ci-artifacts/mpd',
      artifactStoreEndpoint: 'http://minio.internal:9000',
      artifactStoreRegion: 'eu-west-1',
      artifactStorePathStyle: true,
      artifactRetentionMs: 12 * 3_600_000,
      tls: { cert: 'CERT', key: 'KEY' },
    });
  });
});

describe('runOptions', () => {
  it('hands every run setting on under its option name, files resolved against the base directory', () => {
    const settings = parseSettings(
      {
        minWorkers: '2',
        report: 'out/report.json',
        timings: '/cache/timings.json',
        env: ['CI=true'],
        secretEnv: ['TOKEN=s3cr3t'],
        workingDirectory: '/srv/build',
        runOnlyCategories: 'build,test',
        ignoreCategories: 'slow',
        failureMode: 'WaitForAll',
        maxParallelism: '4',
        workerWaitMs: '2',
        maxLostAttempts: '1',
        timeoutMarginMs: '0.5',
        maxResultBytes: '1mb',
      },
      {},
    );
    const tls = { server: undefined, workers: { ca: 'CA' } };
    expect(runOptions(settings, tls, '/home/ci')).toStrictEqual({
      minWorkers: 2,
      reportFile: '/home/ci/out/report.json',
      timingsFile: '/cache/timings.json',
      environmentVariables: { CI: 'true' },
      secretEnvironmentVariables: { TOKEN: 's3cr3t' },
      workingDirectory: '/srv/build',
      runOnlyCategories: ['build', 'test'],
      ignoreCategories: ['slow'],
      failureMode: 'WaitForAll',
      maxParallelism: 4,
      workerWaitMs: 2_000,
      maxLostAttempts: 1,
      timeoutMarginMs: 500,
      maxResultBytes: 1024 * 1024,
      workerTls: { ca: 'CA' },
    });
  });

  it('leaves out what is not set, so that the runner and the pipeline choose', () => {
    expect(Object.keys(runOptions(parseSettings({}), noTls, '/home/ci'))).toEqual([
      'minWorkers',
      'environmentVariables',
      'secretEnvironmentVariables',
      'workerWaitMs',
      'maxLostAttempts',
      'timeoutMarginMs',
      'maxResultBytes',
    ]);
  });
});

describe('the defaults of the settings', () => {
  it('are the library defaults, not typed again: no flag given, the options resolve as if none were given', () => {
    const { port, host, ...orchestrator } = serverOptions(parseSettings({}), noTls, '/home/ci');
    expect({ port, host }).toEqual({ port: DEFAULT_START_OPTIONS.port, host: DEFAULT_START_OPTIONS.host });
    const { logger: _fromSettings, ...fromSettings } = resolveOrchestratorOptions(orchestrator);
    const { logger: _fromNothing, ...fromNothing } = resolveOrchestratorOptions({});
    // The library reads its relative default against the process's directory; the CLI against its own.
    expect(fromSettings).toStrictEqual({ ...fromNothing, artifactsDir: join('/home/ci', fromNothing.artifactsDir) });
    expect(orchestrator).toStrictEqual({
      heartbeatIntervalSeconds: DEFAULT_ORCHESTRATOR_OPTIONS.heartbeatIntervalSeconds,
      heartbeatTimeoutMs: DEFAULT_ORCHESTRATOR_OPTIONS.heartbeatTimeoutMs,
      bodyLimit: DEFAULT_ORCHESTRATOR_OPTIONS.bodyLimit,
      offlineRetentionMs: DEFAULT_ORCHESTRATOR_OPTIONS.offlineRetentionMs,
      maxWorkers: DEFAULT_ORCHESTRATOR_OPTIONS.maxWorkers,
      maxPipelines: DEFAULT_ORCHESTRATOR_OPTIONS.maxPipelines,
      artifactsDir: join('/home/ci', DEFAULT_ORCHESTRATOR_OPTIONS.artifactsDir),
      maxArtifactBytes: DEFAULT_ORCHESTRATOR_OPTIONS.maxArtifactBytes,
      artifactStorePathStyle: DEFAULT_ORCHESTRATOR_OPTIONS.artifactStorePathStyle,
      artifactRetentionMs: DEFAULT_ORCHESTRATOR_OPTIONS.artifactRetentionMs,
      rateLimits: DEFAULT_ORCHESTRATOR_OPTIONS.rateLimits,
    });

    const run = runOptions(parseSettings({}), noTls, '/home/ci');
    expect({
      workerWaitMs: run.workerWaitMs,
      maxLostAttempts: run.maxLostAttempts,
      timeoutMarginMs: run.timeoutMarginMs,
      maxResultBytes: run.maxResultBytes,
    }).toStrictEqual({
      workerWaitMs: DEFAULT_RUN_OPTIONS.workerWaitMs,
      maxLostAttempts: DEFAULT_RUN_OPTIONS.maxLostAttempts,
      timeoutMarginMs: DEFAULT_RUN_OPTIONS.timeoutMarginMs,
      maxResultBytes: DEFAULT_RUN_OPTIONS.maxResultBytes,
    });
  });
});
