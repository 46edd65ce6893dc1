import { PipelineDefinitionError } from './errors.js';

/** A value that survives `JSON.stringify` / `JSON.parse` unchanged. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Structured log lines from inside a module; the worker prefixes them with the module and execution. */
export interface ModuleLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyModule = ModuleDefinition<string, readonly any[], any, any>;

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
  /** Environment variables sent with the execution request (the worker's own are in `process.env`). */
  readonly env: Readonly<Record<string, string>>;
  /** The directory the module should work in. */
  readonly workingDirectory: string;
  /** Aborted when the module is cancelled or its timeout passes: pass it on to `fetch`, `spawn`, timers. */
  readonly signal: AbortSignal;
  readonly logger: ModuleLogger;
  /** The id of this execution attempt. */
  readonly executionId: string;
  /** The worker running the module. */
  readonly workerId: string;
}

/** A module as written by a pipeline author. */
export interface ModuleOptions<Name extends string, Deps extends readonly Dependency[], R, Params> {
  /** Unique name in the pipeline; it is the module's `moduleTypeName` on the wire. */
  name: Name;
  /**
   * Modules whose results this one needs; it starts once they all succeeded. Give the
   * module itself for a typed result, or its name (result `unknown`).
   */
  dependsOn?: Deps;
  /** Parameters sent to the worker as `serializedModule` (JSON). */
  params?: Params;
  /**
   * How long one run may take, in milliseconds; the run's `signal` aborts then.
   * @default 1_800_000 (30 minutes)
   */
  timeoutMs?: number;
  /** Human description shown in summaries. */
  description?: string;
  /** The work. Its result must be JSON-serialisable: it travels to dependants on other machines. */
  run(ctx: ModuleContext<Deps, Params>): Promise<R> | R;
}

const MODULE_BRAND = Symbol.for('@mpd/pipeline.module');

/** A module definition, as returned by {@link defineModule}. */
export interface ModuleDefinition<Name extends string, Deps extends readonly Dependency[], R, Params> {
  readonly [MODULE_BRAND]: true;
  readonly name: Name;
  readonly dependsOn: Deps;
  readonly params: Params;
  readonly timeoutMs: number | undefined;
  readonly description: string | undefined;
  readonly run: (ctx: ModuleContext<Deps, Params>) => Promise<R> | R;
}

/** The default module timeout: 30 minutes, as in ModularPipelines. */
export const DEFAULT_MODULE_TIMEOUT_MS = 30 * 60 * 1000;

const MODULE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$/;

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
>(options: ModuleOptions<Name, Deps, R, Params>): ModuleDefinition<Name, Deps, R, Params> {
  if (typeof options !== 'object' || options === null) {
    throw new PipelineDefinitionError('InvalidModule', 'defineModule: expected an options object');
  }
  const { name, run } = options;
  if (typeof name !== 'string' || !MODULE_NAME.test(name)) {
    throw new PipelineDefinitionError(
      'InvalidModule',
      `defineModule: name ${JSON.stringify(name)} must be 1-200 characters of letters, digits and . _ : @ / -, starting with a letter or digit`,
    );
  }
  if (typeof run !== 'function') {
    throw new PipelineDefinitionError('InvalidModule', `Module '${name}': run must be a function`);
  }
  const dependsOn = (options.dependsOn ?? []) as unknown as Deps;
  if (!Array.isArray(dependsOn)) {
    throw new PipelineDefinitionError('InvalidModule', `Module '${name}': dependsOn must be an array of modules`);
  }
  dependsOn.forEach((dependency, index) => {
    if (!isModule(dependency) && !(typeof dependency === 'string' && MODULE_NAME.test(dependency))) {
      throw new PipelineDefinitionError(
        'InvalidModule',
        `Module '${name}': dependsOn[${index}] is neither a module made by defineModule nor a module name (got ${describe(dependency)})`,
      );
    }
  });
  const { timeoutMs } = options;
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new PipelineDefinitionError(
      'InvalidModule',
      `Module '${name}': timeoutMs must be a positive number of milliseconds`,
    );
  }
  if (options.params !== undefined) {
    try {
      JSON.stringify(options.params);
    } catch (cause) {
      throw new PipelineDefinitionError('InvalidModule', `Module '${name}': params must be JSON-serialisable`, {
        cause,
      });
    }
  }
  return Object.freeze({
    [MODULE_BRAND]: true as const,
    name,
    dependsOn,
    params: options.params as Params,
    timeoutMs,
    description: options.description,
    run,
  });
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
