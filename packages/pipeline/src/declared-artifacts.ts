/**
 * Declarative artifacts: `produces` on a module, `consumes` on its dependants. Built on
 * `ctx.artifacts` (so the same code runs in the worker's process and in a module host, with the
 * module's timeout and cancel): the references travel in the producer's result under
 * `artifacts`, where the dependant's worker finds them, the run's report shows them and
 * `ctx.result(build).artifacts.dist` types them. The execute request and answer keep the spec's
 * shapes: nothing new on the wire.
 */
import { LIMITS } from '@mpd/contract/limits';
import { shown } from './mistakes.js';
import type { ArtifactRef, JsonValue, ModuleContext } from './module.js';

/** The values of {@link ArtifactCompression}, for checks at run time. */
export const ARTIFACT_COMPRESSIONS = ['none', 'gzip'] as const;

/**
 * How an artifact's tar is stored: `'none'`, the files as they are (fastest: on loopback or a LAN
 * the network outruns gzip, about 56 MiB/s on a CI core, and build outputs are often compressed
 * already); `'gzip'` for compressible files that cross a slow link.
 */
export type ArtifactCompression = (typeof ARTIFACT_COMPRESSIONS)[number];

/**
 * What is wrong with `value` as an {@link ArtifactCompression}, to follow the name of where it was
 * given (`compression must be 'none' or 'gzip', got "zip"`); undefined when it is one. The one
 * check of `produces` and of `ctx.artifacts.upload`.
 */
export function artifactCompressionProblem(value: unknown): string | undefined {
  if (ARTIFACT_COMPRESSIONS.includes(value as ArtifactCompression)) return undefined;
  return `compression must be ${ARTIFACT_COMPRESSIONS.map((compression) => `'${compression}'`).join(' or ')}, got ${JSON.stringify(value)}`;
}

/**
 * What one produced artifact holds: globs (tinyglobby's: `!` excludes, dot files included)
 * matched in the module's working directory, or in `baseDir` (relative paths from the working
 * directory); the archive's paths are relative to that directory, and so are the files a
 * consumer gets in its working directory. `compression` as `ctx.artifacts.upload` takes it
 * (`'none'` by default).
 */
export type ArtifactFiles =
  | string
  | readonly string[]
  | {
      readonly globs: string | readonly string[];
      readonly baseDir?: string;
      readonly compression?: ArtifactCompression;
    };

/** A module's `produces`: artifact name → its files. */
export type ProducesOption<P extends string> = { readonly [K in P]: ArtifactFiles };

/**
 * An artifact a module declares (`build.artifacts.dist`), to name in a dependant's `consumes`.
 * Plain data: the producer's name and the artifact's.
 */
export interface ArtifactHandle<Module extends string = string, Name extends string = string> {
  readonly module: Module;
  readonly name: Name;
}

/**
 * An entry of a module's `consumes`: an artifact (extracted into the working directory), or an
 * artifact and the directory to extract it into (`dir`, relative to the working directory, made
 * if missing; as `ctx.artifacts.download(ref, dir)` takes it): `{ artifact: build.artifacts.dist,
 * dir: 'vendor' }`. A directory of its own keeps two consumers of one artifact that run at once
 * on one worker (which share its working directory) from extracting over each other.
 */
export type ConsumedArtifact<Module extends string = string> =
  ArtifactHandle<Module> | { readonly artifact: ArtifactHandle<Module>; readonly dir: string };

/** A `consumes` entry checked: the producer, the artifact, and where it goes (`'.'` by default). */
export interface ResolvedConsumed extends ArtifactHandle {
  readonly dir: string;
}

/** What a module with `produces` returns: its `run`'s result (an object, or nothing) and `artifacts`. */
export type WithArtifacts<R, P extends string> = [P] extends [never]
  ? R
  : (R extends void | undefined | null ? unknown : R) & { readonly artifacts: { readonly [K in P]: ArtifactRef } };

/** `produces` checked and normalised: artifact name → globs, base directory and compression. */
export type ResolvedProduces = Readonly<
  Record<
    string,
    {
      readonly globs: readonly string[];
      readonly baseDir: string | undefined;
      readonly compression: ArtifactCompression | undefined;
    }
  >
>;

/** The `produces` of a module that declares none, shared by all of them. */
export const NO_PRODUCES: ResolvedProduces = Object.freeze({});

/** The `consumes` of a module that declares none, shared by all of them. */
export const NO_CONSUMES: readonly ResolvedConsumed[] = Object.freeze([]);

/** The handles of a module that produces nothing, shared by all of them. */
const NO_HANDLES: Readonly<Record<string, ArtifactHandle>> = Object.freeze({});

const isGlobs = (value: unknown): value is string | readonly string[] =>
  (typeof value === 'string' && value !== '') ||
  (Array.isArray(value) && value.length > 0 && value.every((glob) => typeof glob === 'string' && glob !== ''));

/**
 * Checks a module's `produces` (names as `ctx.artifacts.upload` takes them: `LIMITS.artifact.name`;
 * globs: a non-empty string or array of them) and normalises it. Each mistake goes to `invalid`,
 * naming the offending key; what it returns then is not to be used (`defineModule` throws).
 */
export function resolveProduces(produces: unknown, invalid: (message: string) => void): ResolvedProduces {
  if (typeof produces !== 'object' || produces === null || Array.isArray(produces)) {
    invalid(`produces must be an object of artifact name → globs, e.g. { dist: 'dist/**' }, got ${shown(produces)}`);
    return NO_PRODUCES;
  }
  const rule = LIMITS.artifact.name;
  const resolved: Record<
    string,
    { globs: readonly string[]; baseDir: string | undefined; compression: ArtifactCompression | undefined }
  > = {};
  for (const [name, files] of Object.entries(produces as Record<string, unknown>)) {
    if (name.length > rule.maxLength || !rule.pattern.test(name)) {
      invalid(
        `produces: artifact name ${JSON.stringify(name)} must be 1-${rule.maxLength} characters of ${rule.alphabet}`,
      );
    }
    const spec = isGlobs(files)
      ? { globs: files }
      : (files as { globs?: unknown; baseDir?: unknown; compression?: unknown } | null);
    if (typeof spec !== 'object' || spec === null || !isGlobs(spec.globs)) {
      invalid(
        `produces.${name} must be a glob, a non-empty array of globs, or { globs, baseDir?, compression? }, got ${shown(files)}`,
      );
      continue;
    }
    if (spec.baseDir !== undefined && (typeof spec.baseDir !== 'string' || spec.baseDir === '')) {
      invalid(`produces.${name}.baseDir must be a non-empty path, got ${shown(spec.baseDir)}`);
    }
    const compression = 'compression' in spec ? spec.compression : undefined;
    const problem = compression === undefined ? undefined : artifactCompressionProblem(compression);
    if (problem !== undefined) invalid(`produces.${name}.${problem}`);
    resolved[name] = Object.freeze({
      globs: Object.freeze(typeof spec.globs === 'string' ? [spec.globs] : [...(spec.globs as string[])]),
      baseDir: spec.baseDir as string | undefined,
      compression: compression as ArtifactCompression | undefined,
    });
  }
  // `produces: {}` declares nothing, as no `produces` does: the same value, so that one identity
  // test says whether a module produces anything.
  return Object.keys(resolved).length === 0 ? NO_PRODUCES : Object.freeze(resolved);
}

/**
 * Checks a module's `consumes`: each entry an {@link ArtifactHandle} of a module among
 * `dependencies` (the producer's result is where the reference is; `undefined`: not known, not
 * checked). Each mistake goes to `invalid`, naming the entry; what it returns then is not to
 * be used (`defineModule` throws).
 */
export function resolveConsumes(
  consumes: unknown,
  dependencies: ReadonlySet<string> | undefined,
  invalid: (message: string) => void,
): readonly ResolvedConsumed[] {
  if (!Array.isArray(consumes)) {
    invalid(`consumes must be an array of artifacts, e.g. [build.artifacts.dist], got ${shown(consumes)}`);
    return NO_CONSUMES;
  }
  return Object.freeze(
    (consumes as unknown[]).map((entry, index) => {
      const withDir = typeof entry === 'object' && entry !== null && 'artifact' in entry;
      const handle = withDir ? (entry as { artifact: unknown }).artifact : entry;
      const dir = withDir ? (entry as { dir?: unknown }).dir : '.';
      const { module, name } = (handle ?? {}) as Partial<ArtifactHandle>;
      if (typeof module !== 'string' || typeof name !== 'string') {
        invalid(
          `consumes[${index}] is not an artifact of a module (got ${handle === undefined ? 'undefined: is the artifact declared in the producer’s produces?' : JSON.stringify(handle)}); write e.g. build.artifacts.dist`,
        );
      } else if (dependencies !== undefined && !dependencies.has(module)) {
        invalid(`consumes[${index}] is artifact '${name}' of '${module}', which is not in dependsOn: add it there`);
      }
      if (typeof dir !== 'string' || dir === '') {
        invalid(
          `consumes[${index}].dir must be a non-empty path (relative to the working directory), got ${shown(dir)}`,
        );
      }
      return Object.freeze({ module, name, dir } as ResolvedConsumed);
    }),
  );
}

/** The handles of a module's produced artifacts: `build.artifacts.dist` is `{ module: 'build', name: 'dist' }`. */
export function artifactHandles(module: string, produces: ResolvedProduces): Readonly<Record<string, ArtifactHandle>> {
  if (produces === NO_PRODUCES) return NO_HANDLES;
  return Object.freeze(
    Object.fromEntries(Object.keys(produces).map((name) => [name, Object.freeze({ module, name })])),
  );
}

/** The reference to `handle` in its producer's result as the dependant received it, or an Error saying what is wrong. */
function consumedRef(ctx: ModuleContext, moduleName: string, handle: ArtifactHandle): ArtifactRef {
  const result = (ctx.results as Record<string, JsonValue | undefined>)[handle.module];
  const artifacts =
    typeof result === 'object' && result !== null && !Array.isArray(result) ? result.artifacts : undefined;
  const ref =
    typeof artifacts === 'object' && artifacts !== null && !Array.isArray(artifacts)
      ? artifacts[handle.name]
      : undefined;
  if (typeof ref !== 'object' || ref === null || Array.isArray(ref)) {
    throw new Error(
      `Module '${moduleName}' consumes artifact '${handle.name}' of '${handle.module}', but the result of '${handle.module}' has no artifacts.${handle.name} reference (did it run with this pipeline's produces?)`,
    );
  }
  return ref as unknown as ArtifactRef;
}

/**
 * `run` with the module's declared artifacts around it: each consumed artifact extracted into
 * its directory (the working directory by default) first (in `consumes` order), then `run`, then each produced artifact
 * uploaded, its reference added to the result under `artifacts`.
 * @throws (rejects) Error when a consumed reference is missing from its producer's result, when
 *   a module with `produces` returns something other than an object or nothing, or one that
 *   has its own `artifacts`; and what `ctx.artifacts` throws (no file matches a glob, the store
 *   refuses, an archive is refused)
 */
export function withDeclaredArtifacts<C, R>(
  moduleName: string,
  run: (ctx: C) => Promise<R> | R,
  produces: ResolvedProduces,
  consumes: readonly ResolvedConsumed[],
): (ctx: C) => Promise<unknown> | unknown {
  if (produces === NO_PRODUCES && consumes.length === 0) return run;
  const produced = Object.entries(produces);
  const declared = async (moduleCtx: C): Promise<unknown> => {
    const ctx = moduleCtx as unknown as ModuleContext;
    for (const handle of consumes) {
      ctx.signal.throwIfAborted();
      await ctx.artifacts.download(consumedRef(ctx, moduleName, handle), handle.dir);
    }
    const value = (await run(moduleCtx)) as unknown;
    if (produced.length === 0) return value;
    if (!(value === undefined || value === null || (typeof value === 'object' && !Array.isArray(value)))) {
      throw new Error(
        `Module '${moduleName}' produces artifacts, so its run must return an object or nothing (the references are added under 'artifacts'); it returned ${Array.isArray(value) ? 'an array' : typeof value}`,
      );
    }
    if (value !== undefined && value !== null && 'artifacts' in value) {
      throw new Error(
        `Module '${moduleName}' produces artifacts, so its result may not have a key 'artifacts' of its own (the references go there)`,
      );
    }
    const artifacts: Record<string, ArtifactRef> = {};
    for (const [name, { globs, baseDir, compression }] of produced) {
      ctx.signal.throwIfAborted();
      artifacts[name] = await ctx.artifacts.upload(name, globs, {
        ...(baseDir === undefined ? {} : { baseDir }),
        ...(compression === undefined ? {} : { compression }),
      });
    }
    return { ...(value ?? {}), artifacts };
  };
  // The pipeline's fingerprint hashes each module's code: the author's, not this wrapper's.
  Object.defineProperty(declared, 'toString', { value: () => run.toString() });
  return declared;
}
