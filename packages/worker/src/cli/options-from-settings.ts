/**
 * The one place the CLI's settings meet the library's options. Settings are named like the
 * options they become where they can be, so each line here is one option; adding a flag that
 * reaches the library adds one line.
 */
import { resolve } from 'node:path';
import { definedOnly } from '@mpd/server-kit/cli';
import type { WorkerOptions } from '../worker-options.js';
import type { WorkerCliSettings } from './settings.js';
import type { TlsFiles } from './tls-files.js';

/**
 * What {@link startWorker} takes from the settings (the logger and the loaded pipeline are the
 * process's). The credential file and the cache directory are given relative to `baseDir`, as
 * every path setting is (`CliRunOptions.cwd`).
 */
export function workerOptions(
  settings: WorkerCliSettings,
  tls: TlsFiles,
  baseDir: string,
): Omit<WorkerOptions, 'logger' | 'pipeline'> {
  return definedOnly({
    port: settings.port,
    host: settings.host,
    id: settings.id,
    endpoint: settings.endpoint,
    orchestratorUrl: settings.orchestrator,
    tags: settings.tags,
    tools: settings.tools,
    slots: settings.slots,
    isolation: settings.isolation,
    killGraceMs: settings.killGraceMs,
    moduleHeapLimitMb: settings.moduleHeapLimitMb,
    joinToken: settings.joinToken,
    credentialFile: settings.credentialFile === undefined ? undefined : resolve(baseDir, settings.credentialFile),
    bodyLimit: settings.bodyLimit,
    maxResultBytes: settings.maxResultBytes,
    inlineResultBytes: settings.inlineResultBytes,
    // Absent only in texts checked without their defaults (the worker's default is then its own).
    cacheDir: settings.cacheDir === undefined ? undefined : resolve(baseDir, settings.cacheDir),
    cacheMaxBytes: settings.cacheMaxBytes,
    packStallMs: settings.packStallMs,
    outputBufferBytes: settings.outputBufferBytes,
    outputSpillBytes: settings.outputSpillBytes,
    token: settings.token,
    open: settings.open,
    tls: tls.server,
    orchestratorTls: tls.orchestrator,
  });
}
