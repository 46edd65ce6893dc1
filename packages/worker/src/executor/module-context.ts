import { statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { AnyModule, JsonValue, ModuleContext, ModuleLogger } from '@mpd/pipeline';
import { moduleCommands } from './module-commands.js';

/** Everything a module's context is made of, each given explicitly (nothing is read from the request). */
export interface ModuleContextFields {
  /** The module being run: its name, and its own `params` for a request that sends none. */
  module: AnyModule;
  /** The parameters sent with the request, parsed; `undefined` (or `null`) means the module's own `params`. */
  params: JsonValue | undefined;
  /** The dependencies' results by module name, parsed. */
  results: Record<string, unknown>;
  /** The environment variables sent with the request; the context gets a frozen copy. */
  env: Record<string, string>;
  workingDirectory: string;
  /** Aborted when the module is cancelled or its timeout passes. */
  signal: AbortSignal;
  logger: ModuleLogger;
  executionId: string;
  workerId: string;
}

/** The `ctx` a module's `run` receives. */
export function createModuleContext(fields: ModuleContextFields): ModuleContext {
  const { module, results } = fields;
  const env = Object.freeze({ ...fields.env });
  return {
    name: module.name,
    params: fields.params ?? module.params,
    results,
    result: (dependency: AnyModule) => results[dependency.name],
    optionalResult: (dependency: AnyModule | string) =>
      results[typeof dependency === 'string' ? dependency : dependency.name],
    env,
    workingDirectory: fields.workingDirectory,
    signal: fields.signal,
    logger: fields.logger,
    ...moduleCommands({ signal: fields.signal, workingDirectory: fields.workingDirectory, env }),
    executionId: fields.executionId,
    workerId: fields.workerId,
  } as ModuleContext;
}

/** Creates the module's working directory (and its parents) unless it exists. */
export async function ensureWorkingDirectory(workingDirectory: string): Promise<void> {
  // A stat is much cheaper than a mkdir through the thread pool, and the directory usually exists.
  if (!statSync(workingDirectory, { throwIfNoEntry: false })?.isDirectory()) {
    await mkdir(workingDirectory, { recursive: true });
  }
}
