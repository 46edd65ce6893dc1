/**
 * The one place the CLI's settings meet the library's options. Settings are named like the
 * options they become, so each line here is one option; adding a flag that reaches the
 * library adds one line.
 */
import { resolve } from 'node:path';
import { definedOnly } from '@mpd/server-kit/cli';
import type { StartOrchestratorOptions } from '../server.js';
import type { RunPipelineFromCliOptions } from './run-from-cli.js';
import type { OrchestratorCliSettings } from './settings.js';
import type { TlsFiles } from './tls-files.js';

/**
 * What {@link startOrchestrator} takes from the settings (the logger is the process's). The
 * artifact store's directory is given relative to `baseDir`, as every path setting is
 * (`CliRunOptions.cwd`).
 */
export function serverOptions(
  settings: OrchestratorCliSettings,
  tls: TlsFiles,
  baseDir: string,
): StartOrchestratorOptions {
  return definedOnly({
    port: settings.port,
    host: settings.host,
    heartbeatIntervalSeconds: settings.heartbeatIntervalSeconds,
    heartbeatTimeoutMs: settings.heartbeatTimeoutMs,
    joinToken: settings.joinToken,
    adminToken: settings.adminToken,
    allowedWorkerHosts: settings.allowedWorkerHosts,
    corsOrigins: settings.corsOrigins,
    bodyLimit: settings.bodyLimit,
    offlineRetentionMs: settings.offlineRetentionMs,
    maxWorkers: settings.maxWorkers,
    maxPipelines: settings.maxPipelines,
    artifactsDir: resolve(baseDir, settings.artifactsDir),
    maxArtifactBytes: settings.maxArtifactBytes,
    artifactStore: settings.artifactStore,
    artifactStoreEndpoint: settings.artifactStoreEndpoint,
    artifactStoreRegion: settings.artifactStoreRegion,
    artifactStorePathStyle: settings.artifactStorePathStyle,
    artifactRetentionMs: settings.artifactRetentionMs,
    rateLimits: settings.rateLimits,
    tls: tls.server,
  });
}

/**
 * What {@link runPipelineFromCli} takes from the settings (the pipeline, registry, logger and
 * signal are the process's). The report and timings files and the logs directory are given relative to `baseDir`.
 */
export function runOptions(
  settings: OrchestratorCliSettings,
  tls: TlsFiles,
  baseDir: string,
): Omit<RunPipelineFromCliOptions, 'pipeline' | 'registry' | 'logger' | 'signal'> {
  return definedOnly({
    minWorkers: settings.minWorkers,
    reportFile: settings.report === undefined ? undefined : resolve(baseDir, settings.report),
    timingsFile: settings.timings === undefined ? undefined : resolve(baseDir, settings.timings),
    logsDir: settings.logsDir === undefined ? undefined : resolve(baseDir, settings.logsDir),
    outputMode: settings.output,
    environmentVariables: settings.environmentVariables,
    secretEnvironmentVariables: settings.secretEnvironmentVariables,
    workingDirectory: settings.workingDirectory,
    runOnlyCategories: settings.runOnlyCategories,
    ignoreCategories: settings.ignoreCategories,
    failureMode: settings.failureMode,
    maxParallelism: settings.maxParallelism,
    workerWaitMs: settings.workerWaitMs,
    maxLostAttempts: settings.maxLostAttempts,
    timeoutMarginMs: settings.timeoutMarginMs,
    maxResultBytes: settings.maxResultBytes,
    workerTls: tls.workers,
  });
}
