/**
 * How a server's command runs when called as a function (`runOrchestratorCli`, `runWorkerCli`):
 * by the `mpd` command (`mpd worker …`), or by the repository's development entries
 * (`pnpm worker …`).
 */
export interface CliRunOptions {
  /**
   * The command's name in its usage line and in its messages, e.g. `mpd worker`.
   * @default the package's own name: `mpd-orchestrator`, `mpd-worker`
   */
  name?: string;
  /**
   * What relative paths in the settings (`--pipeline`, the TLS files, `--credential-file`, …)
   * are relative to. The `mpd` command leaves it to `process.cwd()`, as any command does; the
   * repository's `pnpm orchestrator` / `pnpm worker` pass `INIT_CWD` (pnpm runs a root script in
   * the root, and `INIT_CWD` is where it was typed).
   * @default process.cwd()
   */
  cwd?: string;
  /**
   * Called (and awaited) once the command line and the settings are valid and the server's own
   * modules are loaded, just before the command loads the pipeline file; not called without
   * `--pipeline`. The `mpd` command registers its TypeScript loader (tsx) here, so that `--help`,
   * a bad flag or a bad setting do not pay for it (about 0.6 s of CPU, round R), nor does the
   * server's code go through tsx's loader hooks (round AA's AA5: a worker's start with a pipeline
   * 1,090–1,191 → 786–863 ms of CPU, an orchestrator's 1,105–1,303 → 921–1,016).
   * @default nothing
   */
  beforeLoad?: () => void | Promise<void>;
}

/**
 * How the repository's development entries run: `pnpm orchestrator …` / `pnpm worker …` in a
 * clone (the root package `mpd`'s scripts). Their name is then what was typed (`pnpm worker`),
 * so that what the command prints — its usage line, `(pnpm worker --help lists the flags)` — is a
 * command the user can run there: a clone has no `mpd-worker` on its PATH (a new user's
 * walkthrough, round AE). Outside those scripts (the tests run the entries as node scripts, the
 * bundles, an installed `mpd`): the package's own name. pnpm sets `npm_package_name` and
 * `npm_lifecycle_event` for the script it runs.
 * @param script the root's script: `orchestrator` or `worker`
 * @param env @default process.env
 */
export function developmentRunOptions(
  script: 'orchestrator' | 'worker',
  env: NodeJS.ProcessEnv = process.env,
): CliRunOptions {
  // pnpm runs a root script in the repository's root; INIT_CWD is where it was typed.
  const cwd = env.INIT_CWD ?? process.cwd();
  const typed = env.npm_package_name === 'mpd' && env.npm_lifecycle_event === script;
  return typed ? { cwd, name: `pnpm ${script}` } : { cwd };
}
