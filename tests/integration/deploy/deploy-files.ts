/**
 * Reading the deployment files as their engines read them, for the tests: `compose.yaml` (with
 * compose's `${VAR}` interpolation), the runtime stage of the `Dockerfile` (ENTRYPOINT, WORKDIR,
 * ENV, USER, HEALTHCHECK), and how an image's `mpd` command runs here.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cliOf } from '@mpd/test-kit';
import { parse } from 'yaml';

/** The repository's root: what the image copies to its WORKDIR. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A compose service, as far as the tests use it. */
export interface ComposeService {
  command: string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test: string[] | string };
  stop_grace_period?: string;
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
}

/** `compose.yaml`, parsed as compose parses it (YAML merge keys `<<:` included). */
export function readCompose(): ComposeFile {
  return parse(readFileSync(`${REPO_ROOT}compose.yaml`, 'utf8'), { merge: true }) as ComposeFile;
}

/**
 * Compose's interpolation of one value (https://docs.docker.com/reference/compose-file/interpolation/):
 * `$$` is a `$`; `${NAME}` and `$NAME` the variable or empty; `${NAME:-default}` (`-`: only when
 * unset) the default when it is unset or empty; `${NAME:?message}` (`?`: only when unset) an
 * error naming the variable. Anything else with a `$` is refused.
 * @throws Error `required variable NAME is missing a value: message`, as compose says it.
 */
export function interpolate(text: string, variables: Record<string, string | undefined>): string {
  return text.replace(
    /\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*)|(.?))/g,
    (match, braced?: string, colon?: string, operator?: string, argument?: string, bare?: string, other?: string) => {
      if (match === '$$') return '$';
      if (other !== undefined) throw new Error(`unsupported interpolation at "${match}" in "${text}"`);
      const name = braced ?? bare!;
      const value = variables[name];
      const missing = value === undefined || (colon === ':' && value === '');
      if (operator === '?' && missing) throw new Error(`required variable ${name} is missing a value: ${argument}`);
      if (operator === '-' && missing) return argument!;
      return value ?? '';
    },
  );
}

/** A service's `environment` (map or list form), each value interpolated with `variables`. */
export function environmentOf(
  service: ComposeService,
  variables: Record<string, string | undefined>,
): Record<string, string> {
  const entries: [string, string][] = Array.isArray(service.environment)
    ? service.environment.map((entry) => {
        const equals = entry.indexOf('=');
        return equals < 0 ? [entry, variables[entry] ?? ''] : [entry.slice(0, equals), entry.slice(equals + 1)];
      })
    : Object.entries(service.environment ?? {}).map(([name, value]) => [name, value === null ? '' : String(value)]);
  return Object.fromEntries(entries.map(([name, value]) => [name, interpolate(value, variables)]));
}

/** The services a service depends on, with the condition compose waits for before starting it. */
export function dependenciesOf(service: ComposeService): [string, string][] {
  const dependsOn = service.depends_on ?? [];
  return Array.isArray(dependsOn)
    ? dependsOn.map((name) => [name, 'service_started'])
    : Object.entries(dependsOn).map(([name, { condition }]) => [name, condition ?? 'service_started']);
}

/** The services in an order compose may start them: each after those it depends on. */
export function startOrder(compose: ComposeFile): string[] {
  const order: string[] = [];
  const visit = (name: string, path: string[]): void => {
    if (order.includes(name)) return;
    if (path.includes(name)) throw new Error(`depends_on cycle: ${[...path, name].join(' -> ')}`);
    const service = compose.services[name];
    if (!service) throw new Error(`depends_on names no service: ${name}`);
    for (const [dependency] of dependenciesOf(service)) visit(dependency, [...path, name]);
    order.push(name);
  };
  for (const name of Object.keys(compose.services)) visit(name, []);
  return order;
}

/** The runtime (last) stage of the Dockerfile, as far as a container started from it sees it. */
export interface ImageStage {
  /** `FROM` of the stage. */
  from: string;
  entrypoint: string[];
  workdir: string;
  /** `ENV` variables, in order. */
  env: Record<string, string>;
  user: string | undefined;
  /** `HEALTHCHECK … CMD [...]`'s command. */
  healthcheck: string[] | undefined;
  /** Every instruction of every stage, continuation lines joined: for checks of the build steps. */
  instructions: string[];
}

/** Reads the Dockerfile: JSON (exec) forms only for ENTRYPOINT and HEALTHCHECK's CMD. */
export function readImage(): ImageStage {
  const text = readFileSync(`${REPO_ROOT}Dockerfile`, 'utf8');
  const instructions = text
    .replace(/\\\n(\s*#[^\n]*\n)*/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const lastFrom = instructions.findLastIndex((line) => /^FROM\s/i.test(line));
  const stage: ImageStage = {
    from: instructions[lastFrom]!.split(/\s+/)[1]!,
    entrypoint: [],
    workdir: '/',
    env: {},
    user: undefined,
    healthcheck: undefined,
    instructions,
  };
  for (const line of instructions.slice(lastFrom + 1)) {
    const [, keyword, rest] = /^(\w+)\s+(.*)$/.exec(line)!;
    switch (keyword!.toUpperCase()) {
      case 'ENTRYPOINT':
        stage.entrypoint = JSON.parse(rest!) as string[];
        break;
      case 'WORKDIR':
        stage.workdir = rest!;
        break;
      case 'USER':
        stage.user = rest!;
        break;
      case 'ENV':
        for (const [, name, value] of rest!.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S*)/g)) stage.env[name!] = value!;
        break;
      case 'HEALTHCHECK':
        stage.healthcheck = JSON.parse(/\bCMD\s+(\[.*\])\s*$/.exec(rest!)![1]!) as string[];
        break;
    }
  }
  return stage;
}

/**
 * The script and arguments that run `mpd ARGV` here: the command of the image's ENTRYPOINT
 * (`tini -- mpd`) followed by a service's `command`. The workspace's `mpd` entry, which the image
 * runs built (`packages/cli/dist/main.js`).
 */
export function mpdProcess(argv: readonly string[]): { script: string; args: string[] } {
  return { script: cliOf('mpd'), args: [...argv] };
}
