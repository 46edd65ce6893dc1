import { accessSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { AnyModule, JsonValue, ModuleArtifacts, ModuleContext, ModuleLogger } from '@mpd/pipeline';
import { execIn, spawnIn } from './module-commands.js';

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
  /**
   * Aborted when the module is cancelled or its timeout passes. Read only when the module reads
   * `ctx.signal` (or runs a command): a module host makes it then (a getter here), as an
   * `AbortController` costs a no-op module a noticeable share of its CPU.
   */
  readonly signal: AbortSignal;
  /** Read only when the module reads `ctx.logger` (a getter in a module host, which makes it then). */
  readonly logger: ModuleLogger;
  /**
   * Where the lines the module's commands (`ctx.exec`, `ctx.spawn`) write to stdout or stderr
   * go, as they come: the whole lines of each read of the pipe, as bytes, each ending with its
   * `\n`; a promise returned pauses the command's stream until it resolves
   * (`CommandScope.onOutput`). @default nowhere
   */
  onOutput?: ((stream: 'stdout' | 'stderr', lines: Buffer) => void | Promise<void>) | undefined;
  /** The execution's secret values, UTF-8 (`CommandScope.secrets`). @default none */
  secrets?: readonly Buffer[] | undefined;
  /** Whether this process's own stdout and stderr are captured as the module's output (`CommandScope.ownOutputCaptured`). @default false */
  ownOutputCaptured?: boolean | undefined;
  executionId: string;
  workerId: string;
  /** `ctx.artifacts` (see `moduleArtifacts`): read only when the module reads it (a getter in a module host). */
  readonly artifacts: ModuleArtifacts;
}

// The context's functions are made by these factories rather than written inline: under tsx
// (how the CLIs and the module hosts run), every function written where it gets a name costs a
// `defineProperty` of that name each time it is created, several per module otherwise.
const resultIn = (results: Record<string, unknown>) => (dependency: AnyModule) => results[dependency.name];
const optionalResultIn = (results: Record<string, unknown>) => (dependency: AnyModule | string) =>
  results[typeof dependency === 'string' ? dependency : dependency.name];

/** The `ctx` a module's `run` receives. */
export function createModuleContext(fields: ModuleContextFields): ModuleContext {
  const { module, results, workingDirectory } = fields;
  return {
    name: module.name,
    params: fields.params ?? module.params,
    results,
    result: resultIn(results),
    optionalResult: optionalResultIn(results),
    env: Object.freeze({ ...fields.env }),
    workingDirectory,
    get signal() {
      return fields.signal;
    },
    get logger() {
      return fields.logger;
    },
    // Bound to `fields` itself, which holds all a command's scope reads (its signal read only when
    // a command starts; `env` the same variables as `ctx.env`, which is their frozen copy): no
    // scope object with a getter of its own, and no object spread into this one, per module —
    // each an accessor or keyed property defined by a runtime call in a module host's cold code
    // (issue 14, round I).
    spawn: spawnIn(fields),
    exec: execIn(fields),
    executionId: fields.executionId,
    workerId: fields.workerId,
    get artifacts() {
      return fields.artifacts;
    },
  } as ModuleContext;
}

/**
 * Creates the module's working directory (and its parents) unless it exists.
 * @returns undefined when it exists (the usual case: nothing to await, no promise made), else a
 *   promise that resolves once it is made
 * @throws (the promise rejects) `EEXIST` when a file is in the way, or `mkdir`'s error
 */
export function ensureWorkingDirectory(workingDirectory: string): Promise<void> | undefined {
  // Usually the directory exists: one access() of it with a trailing slash says so (it fails on
  // a missing path and on a file), cheaper than a stat (no Stats object) and much cheaper than a
  // mkdir through the thread pool.
  try {
    accessSync(`${workingDirectory}/`);
    return undefined;
  } catch {
    // missing, or not a directory: as below
  }
  return makeWorkingDirectory(workingDirectory);
}

async function makeWorkingDirectory(workingDirectory: string): Promise<void> {
  if (!statSync(workingDirectory, { throwIfNoEntry: false })?.isDirectory()) {
    await mkdir(workingDirectory, { recursive: true });
  }
}
