import type { ChildProcess, StdioOptions } from 'node:child_process';
import { jsonDepth, LIMITS } from '@mpd/contract/limits';
import { PipelineDefinitionError } from './errors.js';
import { Mistakes, shown } from './mistakes.js';
import {
  MODULE_PRIORITIES,
  type ModulePriority,
  type ModuleRequirements,
  type ParallelLimit,
  type ResolvedRetryPolicy,
  type RetryPolicy,
} from './scheduling.js';
import {
  type ArtifactCompression,
  type ArtifactHandle,
  artifactHandles,
  type ConsumedArtifact,
  NO_CONSUMES,
  NO_PRODUCES,
  type ProducesOption,
  resolveConsumes,
  type ResolvedConsumed,
  resolveProduces,
  type ResolvedProduces,
  withDeclaredArtifacts,
  type WithArtifacts,
} from './declared-artifacts.js';

/** A value that survives `JSON.stringify` / `JSON.parse` unchanged. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Structured log lines from inside a module; the worker prefixes them with the module and execution. */
export interface ModuleLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** What `ctx.exec` and `ctx.spawn` take besides the command and its arguments. */
export interface CommandOptions {
  /** @default `ctx.workingDirectory` */
  cwd?: string;
  /**
   * Variables set for the command on top of the worker's environment (`process.env`) and the
   * run's (`ctx.env`, which wins over the worker's).
   * @default none besides those
   */
  env?: Readonly<Record<string, string>>;
}

/** Options of `ctx.exec`. */
export interface ExecOptions extends CommandOptions {
  /** Written to the command's stdin, which is then closed. @default nothing: stdin is closed at once */
  input?: string;
  /**
   * The most stdout (and, apart, stderr) kept, in bytes; a command that writes more is stopped
   * and `exec` rejects.
   * @default 16_777_216 (16 MiB)
   */
  maxBufferBytes?: number;
  /** Resolve with the exit code instead of rejecting when the command exits non-zero. @default false */
  allowNonZeroExit?: boolean;
}

/** What `ctx.exec` resolves to: the command's output (UTF-8) and exit code. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Options of `ctx.spawn`: Node's `stdio` (`'pipe'` for each stream by default). */
export interface SpawnCommandOptions extends CommandOptions {
  /** @default 'pipe' */
  stdio?: StdioOptions;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyModule = ModuleDefinition<string, readonly any[], any, any, any>;

/** A dependency: a module (typed result) or a module's name (result `unknown`). */
export type Dependency = AnyModule | string;

/** The name of a dependency. */
export type DependencyName<D> = D extends AnyModule ? D['name'] : D extends string ? D : never;

/** The result type of a module: what its `run` resolves to. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ModuleResult<M> = M extends ModuleDefinition<string, any, infer R, any> ? R : never;

/** Results of a module's dependencies, keyed by dependency name, typed from their `run`. */
export type DependencyResults<Deps extends readonly Dependency[]> = {
  readonly [D in Deps[number] as DependencyName<D>]: D extends AnyModule ? ModuleResult<D> : unknown;
};

/** What a module's `run` receives. */
export interface ModuleContext<
  Deps extends readonly Dependency[] = readonly Dependency[],
  Params = JsonValue | undefined,
> {
  /** The module's name. */
  readonly name: string;
  /** The module's parameters (from `defineModule({ params })`, as sent by the orchestrator). */
  readonly params: Params;
  /** Results of the module's dependencies, by name. */
  readonly results: DependencyResults<Deps>;
  /** The result of one dependency, typed: `ctx.result(restore)`. */
  result<M extends Extract<Deps[number], AnyModule>>(module: M): ModuleResult<M>;
  /**
   * The result of an optional dependency (`optionalDependsOn`): `undefined` when that module is
   * not in the pipeline, or did not succeed (skipped, or its failure was ignored).
   */
  optionalResult<M extends AnyModule>(module: M | M['name']): ModuleResult<M> | undefined;
  /** Environment variables sent with the execution request (the worker's own are in `process.env`). */
  readonly env: Readonly<Record<string, string>>;
  /** The directory the module should work in. */
  readonly workingDirectory: string;
  /** Aborted when the module is cancelled or its timeout passes: pass it on to `fetch`, `spawn`, timers. */
  readonly signal: AbortSignal;
  readonly logger: ModuleLogger;
  /**
   * Runs a command (no shell: `file` is looked up on `PATH`, `args` are passed as they are) and
   * resolves with its output once it exited 0. It runs in `ctx.workingDirectory` with the
   * worker's environment plus `ctx.env`, and belongs to the module: on cancel, timeout or worker
   * shutdown it gets SIGTERM, and with process isolation (the worker's default for a pipeline
   * file) so does everything it started, SIGKILL after the worker's kill grace.
   * @throws (rejects) an Error named `CommandFailedError` with `exitCode`, `signal`, `stdout`
   *   and `stderr` when the command exits non-zero or is killed (the message ends with the
   *   last lines of its stderr); the signal's reason when the module is cancelled or times out;
   *   Node's spawn error (`ENOENT`, …) when the command cannot start.
   */
  exec(file: string, args?: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /**
   * Starts a command like Node's `child_process.spawn` (no shell), with the defaults and the
   * stopping of {@link ModuleContext.exec}: for a long-running process whose output the module
   * reads as it comes. Wait for its `close` event before the module returns.
   */
  spawn(file: string, args?: readonly string[], options?: SpawnCommandOptions): ChildProcess;
  /** The id of this execution attempt. */
  readonly executionId: string;
  /** The worker running the module. */
  readonly workerId: string;
  /**
   * Files passed between modules through the orchestrator's artifact store:
   * `const ref = await ctx.artifacts.upload('dist', ['dist/**'])` in the producer, return `ref`
   * in its result, and `await ctx.artifacts.download(ctx.result(build).dist, 'dist')` in a
   * dependant, on whichever worker it runs.
   */
  readonly artifacts: ModuleArtifacts;
}

/**
 * A reference to an artifact in the store, as {@link ModuleArtifacts.upload} returns it: plain
 * JSON, so it can travel in a module's result (the contract's `artifactRefSchema`).
 */
export interface ArtifactRef {
  /** The name given to `upload`. */
  readonly name: string;
  /** The SHA-256 of the archive (64 lowercase hex digits): its name in the store. */
  readonly sha256: string;
  /** The archive's size in bytes (a tar, gzipped when {@link ArtifactRef.compression} says so). */
  readonly size: number;
  /** How many files it holds. */
  readonly files: number;
  /**
   * How the archive is compressed. Absent in references written before the option existed, whose
   * archives are all gzipped; extraction tells gzip by its first bytes whatever this says.
   */
  readonly compression?: ArtifactCompression;
}

/** Options of {@link ModuleArtifacts.upload}. */
export interface ArtifactUploadOptions {
  /**
   * The directory the globs are matched in, and what the archive's paths are relative to
   * (relative paths from `ctx.workingDirectory`).
   * @default ctx.workingDirectory
   */
  baseDir?: string;
  /**
   * How the tar is compressed (see {@link ArtifactCompression}). `'none'` by default, as
   * Buildkite uploads files as they are and GitHub's upload-artifact advises
   * `compression-level: 0` for large files: gzip bounded a 1 GiB transfer at about a fifth of
   * what the network carried (docs/performance.md "Artifact throughput: plain tar (issue 13)").
   * @default 'none'
   */
  compression?: ArtifactCompression;
}

/** `ctx.artifacts`: upload files as a named artifact, download one into a directory. */
export interface ModuleArtifacts {
  /**
   * Packs the files under `baseDir` matching `globs` (`dist/**`, `!**\/*.map`; dot files
   * included, symbolic links stored as links) into a tar (gzipped with `compression: 'gzip'`),
   * hashed as it is written, uploads it unless the store has it, and returns its reference. It
   * ends with the attempt as `download` does (an upload never awaited does not outlive its module):
   * its archive is removed and it is no longer waited for.
   * @throws Error when `name` is not 1-128 letters, digits and `. _ -`, when no file matches,
   *   when the worker has no orchestrator, or when the store refuses the upload (over its size
   *   limit); the signal's reason once it aborted, what the module threw, or an Error saying the
   *   module ended before the upload did
   */
  upload(name: string, globs: string | readonly string[], options?: ArtifactUploadOptions): Promise<ArtifactRef>;
  /**
   * Extracts artifact `ref` into `dir` (relative paths from `ctx.workingDirectory`; made if
   * missing), fetching it unless the worker's cache has it. An archive with an entry that would
   * land outside `dir` (an absolute path, `..`, a link pointing out) or that is not a file,
   * directory or link is refused before anything is written. It ends with the attempt (`ctx.signal`
   * aborting: a timeout, a cancel; or the module ending, failed or succeeded, before it finished):
   * what it extracted and had not moved into `dir` yet is removed, and nothing more is written into
   * `dir` afterwards (files it had moved there already, once the blob was verified, stay).
   * @throws Error for such an archive, a `ref` that is not one, or a blob the store does not have;
   *   the signal's reason once it aborted, what the module threw, or an Error saying the module
   *   ended before the download did
   */
  download(ref: ArtifactRef, dir: string): Promise<{ files: number }>;
}

/** What a module's `skipIf` receives; it runs on the orchestrator when the module is ready. */
export interface SkipContext<
  Deps extends readonly Dependency[] = readonly Dependency[],
  Params = JsonValue | undefined,
> {
  readonly name: string;
  readonly params: Params;
  /** Results of the module's dependencies, by name. */
  readonly results: DependencyResults<Deps>;
  /** The run's environment variables (what the module would get as `ctx.env`). */
  readonly env: Readonly<Record<string, string>>;
}

/** A skip decision: a reason to skip, or nothing to run the module. */
export type SkipDecision = string | false | null | undefined;

/** A module as written by a pipeline author. */
export interface ModuleOptions<
  Name extends string,
  Deps extends readonly Dependency[],
  R,
  Params,
  Produces extends string = never,
> {
  /** Unique name in the pipeline; it is the module's `moduleTypeName` on the wire. */
  name: Name;
  /**
   * Modules whose results this one needs; it starts once they all succeeded. Give the
   * module itself for a typed result, or its name (result `unknown`).
   */
  dependsOn?: Deps;
  /**
   * Modules this one waits for when they are in the pipeline, and ignores when they are not.
   * Their results: `ctx.optionalResult(module)`.
   */
  optionalDependsOn?: readonly Dependency[];
  /** Parameters sent to the worker as `serializedModule` (JSON). */
  params?: Params;
  /** What a worker must have to run this module: OS (any of), tools and tags (all of). */
  requires?: ModuleRequirements;
  /**
   * Decides, when the module is ready, whether to skip it: return a reason to skip. Skipping
   * skips the modules that depend on it (with the reason).
   */
  skipIf?: (ctx: SkipContext<Deps, Params>) => SkipDecision | Promise<SkipDecision>;
  /** Retries after a failure (a number is the attempts, with the default backoff). @default the pipeline's, else none */
  retry?: RetryPolicy | number;
  /** A failure becomes `IgnoredFailure`: dependants still run (their result of it is `undefined`). @default false */
  ignoreFailures?: boolean;
  /** Runs even when the run failed or was cancelled, once its dependencies ended (cleanup). @default false */
  alwaysRun?: boolean;
  /** @default 'Normal' */
  priority?: ModulePriority;
  /** Filter with the run's `runOnlyCategories` / `ignoreCategories`. */
  category?: string;
  tags?: readonly string[];
  /**
   * `true`: never runs while any other module runs, anywhere in the cluster. Keys: never runs
   * while another module with one of the same keys runs.
   */
  notInParallel?: boolean | readonly string[];
  /** At most `limit` modules with this `key` run at once across the cluster. */
  parallelLimit?: ParallelLimit;
  /**
   * How long one run may take, in milliseconds; the run's `signal` aborts then.
   * @default 1_800_000 (30 minutes)
   */
  timeoutMs?: number;
  /** What the module does, for people reading the pipeline. */
  description?: string;
  /**
   * Artifacts this module produces: name → globs (`{ dist: 'dist/**' }`, `{ dist: ['dist/**',
   * '!**\/*.map'] }` or `{ dist: { globs: 'dist/**', baseDir: 'packages/app' } }`), matched in the
   * working directory (or `baseDir`) after `run` succeeded. Each is uploaded as
   * `ctx.artifacts.upload(name, globs, { baseDir })` would, and its {@link ArtifactRef} added to
   * the result under `artifacts` (so `run` must return an object or nothing): dependants name it
   * as `build.artifacts.dist` in their `consumes`. A glob that matches no file fails the module.
   * @default none
   */
  produces?: ProducesOption<Produces>;
  /**
   * Artifacts of modules in `dependsOn` this module needs (`[build.artifacts.dist]`): extracted
   * into its working directory, on whichever worker it runs, before `run`, with the paths they
   * had under the producer's directory; `{ artifact: build.artifacts.dist, dir: 'vendor' }`
   * extracts into `vendor` (relative to the working directory) instead.
   * @default none
   */
  consumes?: readonly ConsumedArtifact<NoInfer<DependencyName<Deps[number]>>>[];
  /** The work. Its result must be JSON-serialisable: it travels to dependants on other machines. */
  run(ctx: ModuleContext<Deps, Params>): Promise<R> | R;
}

const MODULE_BRAND = Symbol.for('@mpd/pipeline.module');

/** A module definition, as returned by {@link defineModule}. */
export interface ModuleDefinition<
  Name extends string,
  Deps extends readonly Dependency[],
  R,
  Params,
  Produces extends string = string,
> {
  readonly [MODULE_BRAND]: true;
  readonly name: Name;
  readonly dependsOn: Deps;
  readonly params: Params;
  readonly timeoutMs: number | undefined;
  readonly description: string | undefined;
  readonly run: (ctx: ModuleContext<Deps, Params>) => Promise<R> | R;
  /** Names of the optional dependencies. */
  readonly optionalDependsOn: readonly string[];
  readonly requires: Readonly<ModuleRequirements>;
  readonly skipIf: ((ctx: SkipContext<Deps, Params>) => SkipDecision | Promise<SkipDecision>) | undefined;
  /** Undefined: the pipeline's default applies. */
  readonly retry: ResolvedRetryPolicy | undefined;
  readonly ignoreFailures: boolean;
  readonly alwaysRun: boolean;
  readonly priority: ModulePriority;
  readonly category: string | undefined;
  readonly tags: readonly string[];
  /** `'all'`: runs alone; keys: not with other modules holding one of them; empty: no constraint. */
  readonly notInParallel: 'all' | readonly string[];
  readonly parallelLimit: ParallelLimit | undefined;
  /** The artifacts it produces, to name in a dependant's `consumes`: `build.artifacts.dist`. */
  readonly artifacts: { readonly [K in Produces]: ArtifactHandle<Name, K> };
  /** Its `produces`, normalised: artifact name → globs and base directory. */
  readonly produces: ResolvedProduces;
  /** Its `consumes`, each with the directory it is extracted into (`'.'`: the working directory). */
  readonly consumes: readonly ResolvedConsumed[];
}

/**
 * The default module timeout: 30 minutes, as in ModularPipelines. One value with the wire's
 * default (an execute request without `timeout`), defined by the contract; its `limits` entry
 * imports nothing, so loading a pipeline loads no zod or ts-rest.
 */
export { DEFAULT_MODULE_TIMEOUT_MS } from '@mpd/contract/limits';

/**
 * Why `name` cannot be a module's name, or undefined when it can: the contract's
 * `LIMITS.moduleName` (a name a worker can advertise, send as `moduleTypeName` and put in an
 * execution id), e.g. `must be 1-128 characters of letters, digits and . _ : @ / -, starting with
 * a letter or digit (it has 150)`.
 */
export function moduleNameProblem(name: unknown): string | undefined {
  const { maxLength, pattern, alphabet } = LIMITS.moduleName;
  if (typeof name === 'string' && name.length <= maxLength && pattern.test(name)) return undefined;
  const length = typeof name === 'string' && name.length > maxLength ? ` (it has ${name.length})` : '';
  return `must be 1-${maxLength} characters of ${alphabet}${length}`;
}

const isModuleName = (value: unknown): value is string => moduleNameProblem(value) === undefined;

/**
 * Defines a module: a named unit of work with a typed, JSON-serialisable result.
 *
 * ```ts
 * const restore = defineModule({ name: 'restore', run: () => ({ packages: 12 }) });
 * const build = defineModule({
 *   name: 'build',
 *   dependsOn: [restore],
 *   run: (ctx) => ({ built: ctx.results.restore.packages }),
 * });
 * ```
 */
export function defineModule<
  const Name extends string,
  const Deps extends readonly Dependency[] = readonly [],
  R = unknown,
  Params = undefined,
  const Produces extends string = never,
>(
  options: ModuleOptions<Name, Deps, R, Params, Produces>,
): ModuleDefinition<Name, Deps, WithArtifacts<R, Produces>, Params, Produces> {
  if (typeof options !== 'object' || options === null) {
    throw new PipelineDefinitionError('InvalidModule', 'defineModule: expected an options object');
  }
  const { name, run } = options;
  const nameProblem = moduleNameProblem(name);
  if (nameProblem !== undefined) {
    throw new PipelineDefinitionError('InvalidModule', `defineModule: name ${JSON.stringify(name)} ${nameProblem}`);
  }
  // Every mistake of the module is told to `invalid` and named in one error at the end (as
  // definePipeline does for a pipeline): see `definingName`. The definition under way when this
  // one was asked for (by a getter of its options, a `toJSON` of its params) is put back after it.
  const outerName = definingName;
  const outerMistakes = definingMistakes;
  definingName = name;
  definingMistakes = undefined;
  try {
    if (typeof run !== 'function') invalid(`run must be a function, got ${shown(run)}`);
    const dependsOn = (options.dependsOn ?? NO_DEPENDENCIES) as unknown as Deps;
    checkDependencies('dependsOn', dependsOn, 'an array of modules');
    const { timeoutMs } = options;
    if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
      invalid(`timeoutMs must be a positive number of milliseconds, got ${shown(timeoutMs)}`);
    }
    const optionalDependsOn = options.optionalDependsOn ?? NO_NAMES;
    checkDependencies('optionalDependsOn', optionalDependsOn, 'an array of modules or module names');
    const requires = options.requires === undefined ? NO_REQUIREMENTS : checkRequirements(options.requires, invalid);
    if (options.skipIf !== undefined && typeof options.skipIf !== 'function')
      invalid(`skipIf must be a function, got ${shown(options.skipIf)}`);
    if (options.priority !== undefined && !MODULE_PRIORITIES.includes(options.priority)) {
      invalid(`priority must be one of ${MODULE_PRIORITIES.join(', ')}, got ${shown(options.priority)}`);
    }
    if (options.category !== undefined && !isName(options.category))
      invalid(`category must be ${A_NAME}, got ${shown(options.category)}`);
    const tags = options.tags ?? NO_NAMES;
    if (!Array.isArray(tags) || !tags.every(isName))
      invalid(`tags must be an array of names (each ${A_NAME}), got ${shown(tags)}`);
    const notInParallel = options.notInParallel ?? false;
    if (!(typeof notInParallel === 'boolean' || (Array.isArray(notInParallel) && notInParallel.every(isName)))) {
      invalid(`notInParallel must be true, false, or an array of constraint keys, got ${shown(notInParallel)}`);
    }
    const { parallelLimit } = options;
    if (
      parallelLimit !== undefined &&
      !(isName(parallelLimit?.key) && Number.isInteger(parallelLimit?.limit) && parallelLimit.limit >= 1)
    ) {
      invalid(`parallelLimit must be { key: ${A_NAME}, limit: an integer of at least 1 }, got ${shown(parallelLimit)}`);
    }
    if (options.params !== undefined) {
      let text: string | undefined;
      try {
        text = JSON.stringify(options.params);
      } catch (cause) {
        invalid('params must be JSON-serialisable', cause);
      }
      // They travel to the worker as JSON, within the depth every result keeps to.
      const depth = text === undefined ? 0 : jsonDepth(text);
      if (depth > LIMITS.json.maxDepth) {
        invalid(`params are nested ${depth} levels deep, over the limit of ${LIMITS.json.maxDepth} levels`);
      }
    }
    // Most modules declare no artifacts: they share the empty declarations (a pipeline's modules
    // are defined in every process that loads it: issue 14).
    const produces = options.produces === undefined ? NO_PRODUCES : resolveProduces(options.produces, invalid);
    const consumes =
      options.consumes === undefined
        ? NO_CONSUMES
        : resolveConsumes(
            options.consumes,
            // Unknown when dependsOn is not a list: no entry is said to be missing from it then.
            Array.isArray(dependsOn) ? new Set(dependsOn.map(dependencyName)) : undefined,
            invalid,
          );
    const retry = options.retry === undefined ? undefined : resolveRetry(options.retry, 'retry', invalid);
    // As `invalid` left it (TypeScript, which does not follow the calls, takes it for still undefined).
    (definingMistakes as Mistakes | undefined)?.throwIfAny();
    return Object.freeze({
      name,
      dependsOn,
      params: options.params as Params,
      timeoutMs,
      description: options.description,
      run: withDeclaredArtifacts(name, run, produces, consumes) as (
        ctx: ModuleContext<Deps, Params>,
      ) => Promise<WithArtifacts<R, Produces>>,
      optionalDependsOn: optionalDependsOn.length === 0 ? NO_NAMES : optionalDependsOn.map(dependencyName),
      requires,
      skipIf: options.skipIf,
      retry,
      ignoreFailures: options.ignoreFailures === true,
      alwaysRun: options.alwaysRun === true,
      priority: options.priority ?? 'Normal',
      category: options.category,
      tags: tags.length === 0 ? NO_NAMES : Object.freeze([...tags]),
      notInParallel:
        notInParallel === true
          ? 'all'
          : notInParallel === false || notInParallel.length === 0
            ? NO_NAMES
            : Object.freeze([...notInParallel]),
      parallelLimit: parallelLimit ? Object.freeze({ ...parallelLimit }) : undefined,
      artifacts: artifactHandles(name, produces) as { readonly [K in Produces]: ArtifactHandle<Name, K> },
      produces,
      consumes,
      // Last: V8 makes a literal's properties before its first computed key from one template and
      // adds the others one by one: 4,000 such objects took 8 ms with the brand first, 3.4 ms last.
      [MODULE_BRAND]: true as const,
    });
  } finally {
    definingName = outerName;
    definingMistakes = outerMistakes;
  }
}

/** What modules without these options share (frozen). */
const NO_DEPENDENCIES: readonly Dependency[] = Object.freeze([]);
/** Also the dependencies and dependants of a module that has none (`pipeline.ts`). */
export const NO_NAMES: readonly string[] = Object.freeze([]);
const NO_REQUIREMENTS: ModuleRequirements = Object.freeze({});

/**
 * The name of the module {@link defineModule} is defining, and its mistakes (made at the first:
 * most modules have none), which {@link invalid} adds to. Kept here rather than in a closure per
 * definition given to each check: under tsx (how the CLIs and module hosts load a pipeline) a
 * closure also costs a `defineProperty` of its name each time it is made, and one per module
 * doubled `defineModule`'s warm cost (docs/performance.md, "Pipeline definitions: every mistake in one error,
 * at no cost per module").
 */
let definingName = '';
let definingMistakes: Mistakes | undefined;

/** Notes a mistake of the module being defined (see {@link definingName}). */
function invalid(message: string, cause?: unknown): void {
  definingMistakes ??= new Mistakes(`Module '${definingName}'`, 'InvalidModule');
  definingMistakes.add('InvalidModule', message, cause);
}

/**
 * Notes the mistakes of the module's `dependsOn` or `optionalDependsOn` (`key`): a `list` that is
 * not an array (it `mustBe` one), or an entry that is neither a module nor a module name; each
 * showing what was given.
 */
function checkDependencies(key: 'dependsOn' | 'optionalDependsOn', list: unknown, mustBe: string): void {
  if (!Array.isArray(list)) {
    invalid(`${key} must be ${mustBe}, got ${shown(list)}`);
    return;
  }
  for (let index = 0; index < list.length; index++) {
    const dependency: unknown = list[index];
    if (isModule(dependency) || isModuleName(dependency)) continue;
    invalid(
      `${key}[${index}] is neither a module made by defineModule nor a module name (got ${describe(dependency)})`,
    );
  }
}

/** A name (category, tag, requirement, constraint key): not blank, at most `LIMITS.name.maxLength` characters. */
const isName = (value: unknown): value is string =>
  typeof value === 'string' && value.trim() !== '' && value.length <= LIMITS.name.maxLength;

/** What {@link isName} takes, for messages. */
const A_NAME = `a non-empty string of at most ${LIMITS.name.maxLength} characters`;

/** A module's `requires`, checked (each mistake given to `invalid`) and frozen. */
function checkRequirements(requires: ModuleRequirements, invalid: (message: string) => void): ModuleRequirements {
  if (typeof requires !== 'object' || requires === null) {
    invalid(`requires must be { os?, tools?, tags? }, got ${shown(requires)}`);
    return NO_REQUIREMENTS;
  }
  const result: Record<string, readonly string[]> = {};
  for (const key of ['os', 'tools', 'tags'] as const) {
    const value = requires[key];
    if (value === undefined) continue;
    if (!Array.isArray(value) || !value.every(isName)) {
      invalid(`requires.${key} must be an array of names (each ${A_NAME}), got ${shown(value)}`);
      continue;
    }
    result[key] = Object.freeze([...value]);
  }
  return Object.freeze(result);
}

/**
 * Fills in a retry policy's defaults; for a policy that is not one, tells `invalid` the mistake
 * (naming `where`) and answers undefined, as the other checks of a definition do (all of its
 * mistakes are named in one error).
 */
export function resolveRetry(
  retry: RetryPolicy | number,
  where: string,
  invalid: (message: string) => void,
): ResolvedRetryPolicy | undefined {
  const policy = typeof retry === 'number' ? { attempts: retry } : retry;
  const resolved = { backoffMs: 1_000, maxBackoffMs: 60_000, ...policy };
  if (
    !Number.isInteger(resolved.attempts) ||
    resolved.attempts < 0 ||
    resolved.attempts > 100 ||
    !(resolved.backoffMs >= 0) ||
    !(resolved.maxBackoffMs >= resolved.backoffMs)
  ) {
    invalid(
      `${where} must be { attempts: an integer from 0 to 100, backoffMs >= 0, maxBackoffMs >= backoffMs }, got ${shown(retry)}`,
    );
    return undefined;
  }
  return Object.freeze(resolved);
}

/** The name a dependency refers to. */
export function dependencyName(dependency: Dependency): string {
  return typeof dependency === 'string' ? dependency : dependency.name;
}

/** True for a value made by {@link defineModule} (in any copy of this package). */
export function isModule(value: unknown): value is AnyModule {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MODULE_BRAND] === true;
}

function describe(value: unknown): string {
  if (value === undefined) return 'undefined (is the dependency defined before this module?)';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}
