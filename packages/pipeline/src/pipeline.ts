import { createHash, hash } from 'node:crypto';
import { LIMITS, moduleNameCharacters } from '@mpd/contract/limits';
import { PipelineDefinitionError } from './errors.js';
import { Mistakes, shown } from './mistakes.js';
import {
  type AnyModule,
  DEFAULT_MODULE_TIMEOUT_MS,
  dependencyName,
  isModule,
  moduleNameProblem,
  NO_NAMES,
  resolveRetry,
} from './module.js';
import { type FailureMode, NO_RETRY, type ResolvedRetryPolicy, type RetryPolicy } from './scheduling.js';

const PIPELINE_BRAND = Symbol.for('@mpd/pipeline.pipeline');

/** Options of {@link definePipeline}. */
export interface PipelineOptions {
  /** The pipeline's name, shown in summaries and advertised by workers. */
  name: string;
  /** Every module of the pipeline; each module's dependencies must be among them. */
  modules: readonly AnyModule[];
  /** Defaults for modules that set none. */
  defaults?: {
    /** @default 1_800_000 (30 minutes) */
    timeoutMs?: number;
    /** @default no retries */
    retry?: RetryPolicy | number;
  };
  /** @default 'StopOnFirstFailure' */
  failureMode?: FailureMode;
  /** At most this many modules run at once across the cluster. @default no limit but the workers' slots */
  maxParallelism?: number;
}

/** A validated pipeline, as returned by {@link definePipeline}. */
export interface Pipeline {
  readonly [PIPELINE_BRAND]: true;
  readonly name: string;
  /** Modules by name. */
  readonly modules: ReadonlyMap<string, AnyModule>;
  /** Module names in a dependency order (each after all it depends on). */
  readonly order: readonly string[];
  /** Names of each module's dependencies (required ones, and optional ones that are in the pipeline). */
  readonly dependencies: ReadonlyMap<string, readonly string[]>;
  /** Defaults for modules that set none. */
  readonly defaults: { readonly timeoutMs: number; readonly retry: ResolvedRetryPolicy };
  readonly failureMode: FailureMode;
  readonly maxParallelism: number | undefined;
  /** Names of the modules that depend on each module. */
  readonly dependants: ReadonlyMap<string, readonly string[]>;
  /**
   * A hash of the module definitions (names, dependencies, parameters, timeouts and code):
   * an orchestrator only sends modules to workers whose fingerprint equals its own.
   * `sha256:` and 64 hex digits. Computed when first read (a module host never reads it: it
   * checks {@link Pipeline.moduleDigest} of the modules it runs), then kept.
   */
  readonly fingerprint: string;
  /**
   * The digest of one module's definition: `sha256:` and 64 hex digits over the pipeline's name
   * and the same text of the module (name, dependencies, parameters, timeout, code, declared
   * artifacts) that {@link Pipeline.fingerprint} hashes for it. A worker sends it with each
   * module to its module host, which compares it with its own before it runs the module: a host
   * checks only the modules it runs rather than hashing the whole pipeline at its start (issue 14).
   * Made for every module when {@link Pipeline.fingerprint} is made (from the same text, hashed
   * once more), else when first asked for a module; then kept.
   * @throws RangeError when the pipeline has no module `moduleName`.
   */
  moduleDigest(moduleName: string): string;
  /**
   * The absolute path of the file the pipeline was loaded from by `loadPipelineFile`;
   * `undefined` for a pipeline defined in code. A worker runs modules in separate processes
   * (its module hosts, which load this file again) only when it is set.
   */
  readonly sourceFile: string | undefined;
}

/**
 * Defines a pipeline: a DAG of modules. Refuses duplicate names, dependencies that are not
 * in `modules`, dependency cycles, and what a worker could not advertise (more than
 * `LIMITS.pipeline.maxModules` modules or `LIMITS.pipeline.maxNameCharacters` characters of module
 * names together, a module name outside `LIMITS.moduleName`, from a module
 * made by another copy of this package), each with a message naming the modules concerned.
 *
 * Every mistake is named in one {@link PipelineDefinitionError}, as `tsc` lists every error of
 * a program: code `InvalidPipeline`, its message `Pipeline 'ci' has 3 mistakes:` and a line per
 * mistake (the first 20), its `mistakes` each one's code and message. A
 * single mistake throws its own code and message (e.g. `MissingDependency`,
 * `Pipeline 'ci': module 'build' depends on 'restore', which is not in the pipeline's modules`).
 * What leaves nothing to check (no options object, a name that is not one, no modules) throws at once.
 *
 * ```ts
 * export default definePipeline({ name: 'ci', modules: [restore, build, test] });
 * ```
 */
export function definePipeline(options: PipelineOptions): Pipeline {
  if (typeof options !== 'object' || options === null) {
    throw new PipelineDefinitionError('InvalidPipeline', 'definePipeline: expected an options object');
  }
  const { name } = options;
  if (typeof name !== 'string' || name.trim() === '' || name.length > LIMITS.name.maxLength) {
    throw new PipelineDefinitionError(
      'InvalidPipeline',
      `definePipeline: name must be a non-empty string of at most ${LIMITS.name.maxLength} characters`,
    );
  }
  if (!Array.isArray(options.modules) || options.modules.length === 0) {
    throw new PipelineDefinitionError('InvalidPipeline', `Pipeline '${name}': modules must be a non-empty array`);
  }
  const mistakes = new Mistakes(`Pipeline '${name}'`, 'InvalidPipeline');
  // Workers advertise every module's name when they register: a pipeline they could not advertise could never run.
  const { maxModules } = LIMITS.pipeline;
  if (options.modules.length > maxModules) {
    mistakes.add(
      'InvalidPipeline',
      `${options.modules.length} modules, over the limit of ${maxModules} (what a worker can advertise)`,
    );
  }
  const { maxNameCharacters } = LIMITS.pipeline;
  const nameCharacters = moduleNameCharacters(options.modules.map((module) => String(module?.name ?? '')));
  if (nameCharacters > maxNameCharacters) {
    mistakes.add(
      'InvalidPipeline',
      `its module names take ${nameCharacters} characters together, over the limit of ${maxNameCharacters} (what a worker can advertise)`,
    );
  }

  const modules = new Map<string, AnyModule>();
  options.modules.forEach((module, index) => {
    if (!isModule(module)) {
      mistakes.add('InvalidModule', `modules[${index}] is not a module made by defineModule`);
      return;
    }
    // A module made by another copy of this package may have been held to other rules. It is
    // kept all the same: the modules that depend on it are not missing a dependency.
    const nameProblem = moduleNameProblem(module.name);
    if (nameProblem !== undefined) {
      mistakes.add(
        'InvalidModule',
        `module ${JSON.stringify(module.name)} cannot be sent to workers: its name ${nameProblem}`,
      );
    }
    if (modules.has(module.name)) {
      mistakes.add('DuplicateModule', `two modules are named '${module.name}'`);
      return;
    }
    modules.set(module.name, module);
  });

  const dependencies = new Map<string, readonly string[]>();
  for (const module of modules.values()) {
    // Most modules of a large pipeline have no dependencies: they share one empty list.
    if (module.dependsOn.length === 0 && module.optionalDependsOn.length === 0) {
      dependencies.set(module.name, NO_NAMES);
      continue;
    }
    const required = [...new Set(module.dependsOn.map(dependencyName))];
    const optional = module.optionalDependsOn.filter(
      (dependency) => modules.has(dependency) && !required.includes(dependency),
    );
    const names = [...required, ...optional];
    let missing = false;
    for (const dependency of required) {
      if (modules.has(dependency)) continue;
      missing = true;
      mistakes.add(
        'MissingDependency',
        `module '${module.name}' depends on '${dependency}', which is not in the pipeline's modules`,
      );
    }
    // Without the missing ones, so that the cycles are still found among the others.
    dependencies.set(module.name, missing ? names.filter((dependency) => modules.has(dependency)) : names);
  }

  const defaults = options.defaults ?? {};
  const timeoutMs = defaults.timeoutMs ?? DEFAULT_MODULE_TIMEOUT_MS;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    mistakes.add('InvalidPipeline', `defaults.timeoutMs must be a positive number, got ${shown(timeoutMs)}`);
  }
  // 'InvalidPipeline', as defaults.timeoutMs: an option of the pipeline, not of a module.
  const retry =
    defaults.retry === undefined
      ? NO_RETRY
      : (resolveRetry(defaults.retry, 'defaults.retry', (message) => mistakes.add('InvalidPipeline', message)) ??
        NO_RETRY);
  const failureMode = options.failureMode ?? 'StopOnFirstFailure';
  if (failureMode !== 'StopOnFirstFailure' && failureMode !== 'WaitForAll') {
    mistakes.add('InvalidPipeline', `failureMode must be StopOnFirstFailure or WaitForAll, got ${shown(failureMode)}`);
  }
  const { maxParallelism } = options;
  if (maxParallelism !== undefined && !(Number.isInteger(maxParallelism) && maxParallelism >= 1)) {
    mistakes.add('InvalidPipeline', `maxParallelism must be an integer of at least 1, got ${shown(maxParallelism)}`);
  }

  const order = topologicalOrder(modules, dependencies, (cycle) =>
    mistakes.add('DependencyCycle', `dependency cycle ${cycle.map((part) => `'${part}'`).join(' -> ')}`),
  );
  mistakes.throwIfAny();
  // Modules nothing depends on (in a wide pipeline, all of them) share one empty list.
  const dependants = new Map<string, readonly string[]>();
  for (const moduleName of order) dependants.set(moduleName, NO_NAMES);
  for (const moduleName of order) {
    for (const dependency of dependencies.get(moduleName)!) {
      const list = dependants.get(dependency)!;
      if (list === NO_NAMES) dependants.set(dependency, [moduleName]);
      else (list as string[]).push(moduleName);
    }
  }
  // Read by the orchestrator and each worker, not by module hosts: made when first read.
  let fingerprint: string | undefined;
  // Each module's digest, made by the fingerprint (for every module, from the text it hashes for
  // it) or when first asked: a worker reads the fingerprint to register, then each digest of a
  // module it runs, and made each module's text twice before (issue 14, round V).
  const digests = new Map<string, string>();
  const pipeline: Pipeline = {
    [PIPELINE_BRAND]: true,
    name,
    modules,
    order,
    dependencies,
    dependants,
    defaults: Object.freeze({ timeoutMs, retry }),
    failureMode,
    maxParallelism,
    get fingerprint(): string {
      return (fingerprint ??= fingerprintOf(name, order, modules, dependencies, digests));
    },
    moduleDigest: moduleDigests(name, modules, dependencies, digests),
    sourceFile: undefined,
  };
  return Object.freeze(pipeline);
}

/** True for a value made by {@link definePipeline} (in any copy of this package). */
export function isPipeline(value: unknown): value is Pipeline {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[PIPELINE_BRAND] === true;
}

/**
 * The modules in a dependency order. Each dependency that closes a cycle is left out of it and
 * given to `onCycle` as the cycle's path (`['a', 'c', 'b', 'a']`): every cycle is found, once
 * per dependency that closes it.
 */
function topologicalOrder(
  modules: ReadonlyMap<string, AnyModule>,
  dependencies: ReadonlyMap<string, readonly string[]>,
  onCycle: (cycle: readonly string[]) => void,
): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  // A depth-first walk with its own stack, not recursion: a chain of modules may be as long as
  // the pipeline (up to LIMITS.pipeline.maxModules), deeper than the call stack goes. The stack
  // is two arrays (the modules on the path, and the index of each one's next dependency to look
  // at) rather than an object per module entered.
  const path: string[] = [];
  const next: number[] = [];
  for (const root of modules.keys()) {
    if (state.has(root)) continue;
    state.set(root, 'visiting');
    path.push(root);
    next.push(0);
    while (path.length > 0) {
      const top = path.length - 1;
      const dependency = dependencies.get(path[top]!)![next[top]!++];
      if (dependency === undefined) {
        state.set(path[top]!, 'done');
        order.push(path.pop()!);
        next.pop();
        continue;
      }
      const current = state.get(dependency);
      if (current === 'done') continue;
      if (current === 'visiting') {
        onCycle([...path.slice(path.indexOf(dependency)), dependency]);
        continue;
      }
      state.set(dependency, 'visiting');
      path.push(dependency);
      next.push(0);
    }
  }
  return order;
}

/**
 * How much of the fingerprint's text is hashed at a time, in UTF-16 code units: one update per
 * about this much rather than one per module (each update is a call into OpenSSL with its own
 * encoding; 4,000 of them were a third of the fingerprint's cost). The hash is over the same bytes.
 */
const FINGERPRINT_CHUNK = 64 * 1024;

/**
 * The fingerprint (see {@link Pipeline.fingerprint}); also puts each module's digest (see
 * {@link Pipeline.moduleDigest}) not yet in `digests` there, made from the same text of the module
 * as the fingerprint hashes, so that no module's text is made twice. The fingerprint stays the
 * hash of the texts themselves (not of the digests): workers and orchestrators of different
 * versions compare it on the wire.
 */
function fingerprintOf(
  name: string,
  order: readonly string[],
  modules: ReadonlyMap<string, AnyModule>,
  dependencies: ReadonlyMap<string, readonly string[]>,
  digests: Map<string, string>,
): string {
  const hash = createHash('sha256');
  // The concatenation of one JSON text per module: each is well-formed UTF-16 (JSON.stringify
  // escapes lone surrogates), so cutting between them changes no byte that is hashed.
  const prefix = JSON.stringify({ name });
  let text = prefix;
  for (const moduleName of [...order].sort()) {
    const entry = fingerprintEntry(moduleName, modules.get(moduleName)!, dependencies);
    text += entry;
    if (!digests.has(moduleName)) digests.set(moduleName, digestOf(prefix + entry));
    if (text.length >= FINGERPRINT_CHUNK) {
      hash.update(text);
      text = '';
    }
  }
  hash.update(text);
  return `sha256:${hash.digest('hex')}`;
}

/**
 * A module's digest of its `text` (the pipeline's name and the module's entry): `sha256:` and 64
 * hex digits, by one-shot `crypto.hash` (a `Hash` object, its update and its digest cost about
 * four times as much: bench, issue 14).
 */
function digestOf(text: string): string {
  return `sha256:${hash('sha256', text, 'hex')}`;
}

/** One module's text in the fingerprint (and its {@link Pipeline.moduleDigest}): a JSON object. */
function fingerprintEntry(
  moduleName: string,
  module: AnyModule,
  dependencies: ReadonlyMap<string, readonly string[]>,
): string {
  const names = dependencies.get(moduleName) ?? NO_NAMES;
  const entry: Record<string, unknown> = {
    name: moduleName,
    dependsOn: names.length < 2 ? names : [...names].sort(),
    params: module.params ?? null,
    timeoutMs: module.timeoutMs ?? null,
    run: module.run.toString(),
  };
  // Only when declared, so that the fingerprints of pipelines without artifacts stay as they
  // were. Not `!== NO_PRODUCES`: a module made by another copy of this package has its own.
  if (Object.keys(module.produces).length > 0) entry.produces = module.produces;
  if (module.consumes.length > 0) entry.consumes = module.consumes;
  return JSON.stringify(entry);
}

/**
 * The {@link Pipeline.moduleDigest} of a pipeline's parts, each module's kept in `made` once made
 * (where the pipeline's fingerprint puts them too). Also `loadPipelineFile`'s for a pipeline made
 * by a copy of this package that has none.
 */
export function moduleDigests(
  name: string,
  modules: ReadonlyMap<string, AnyModule>,
  dependencies: ReadonlyMap<string, readonly string[]>,
  made: Map<string, string> = new Map(),
): (moduleName: string) => string {
  const prefix = JSON.stringify({ name });
  return (moduleName) => {
    let digest = made.get(moduleName);
    if (digest === undefined) {
      const module = modules.get(moduleName);
      if (module === undefined) throw new RangeError(`Pipeline '${name}' has no module '${moduleName}'`);
      digest = digestOf(prefix + fingerprintEntry(moduleName, module, dependencies));
      made.set(moduleName, digest);
    }
    return digest;
  };
}
