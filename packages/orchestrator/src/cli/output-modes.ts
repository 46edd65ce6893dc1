/**
 * How the orchestrator's CLI prints its modules' output (`--output`):
 * - `grouped`: each attempt's lines printed together once it ends, as one collapsible section
 *   of the CI's log (`::group::module` … `::endgroup::` under GitHub Actions, a `--- module`
 *   header under Buildkite), so that sections of modules running at once do not interleave;
 * - `prefixed`: each line as it arrives, as `[module] line`;
 * - `quiet`: none (the summary still repeats a failed module's last lines).
 */
export const OUTPUT_MODES = ['grouped', 'prefixed', 'quiet'] as const;
export type OutputMode = (typeof OUTPUT_MODES)[number];

/** The CI whose log sections `grouped` writes. */
export type CiFlavour = 'github-actions' | 'buildkite';

/** Which CI `env` is (`GITHUB_ACTIONS=true`, `BUILDKITE=true`, as their runners set them), if any. */
export function ciOf(env: NodeJS.ProcessEnv): CiFlavour | undefined {
  if (env.GITHUB_ACTIONS === 'true') return 'github-actions';
  if (env.BUILDKITE === 'true') return 'buildkite';
  return undefined;
}

/** `--output`'s default: `grouped` under GitHub Actions and Buildkite, else `prefixed`. */
export function defaultOutputMode(env: NodeJS.ProcessEnv): OutputMode {
  return ciOf(env) === undefined ? 'prefixed' : 'grouped';
}
