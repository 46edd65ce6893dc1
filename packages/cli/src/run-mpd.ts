/**
 * The `mpd` command: `mpd orchestrator …`, `mpd worker …`, `mpd help [COMMAND]`,
 * `mpd --version`. Each subcommand runs in this process (no child process), so a signal sent to
 * the PID of `mpd` reaches the server itself: a service manager's SIGTERM drains a worker.
 */
import { readFileSync } from 'node:fs';
import { registerTypeScript } from './register-typescript.js';
import { stopWhenScriptShellExits } from './script-shell-watch.js';

/** Exit codes of `mpd` itself; a subcommand's own are in its `--help`. */
const EXIT_OK = 0;
/** An unknown command or a missing one: the servers' code for an invalid command line. */
const EXIT_USAGE = 2;

/** The subcommands, in help order, each run by its package's `…/cli` entry. */
const COMMANDS = {
  orchestrator: 'serve the worker registry; with --pipeline FILE, run a pipeline on the workers',
  worker: 'run a worker: register with an orchestrator and execute the modules it sends',
} as const;
type CommandName = keyof typeof COMMANDS;

const isCommand = (name: string | undefined): name is CommandName =>
  name !== undefined && Object.hasOwn(COMMANDS, name);

/** The version of `@mpd/cli` (its package.json: `../package.json` from `src/` and from `dist/`). */
function version(): string {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return version;
}

function helpText(): string {
  const commands: [string, string][] = [
    ...Object.entries(COMMANDS),
    ['help [command]', "show this help, or a command's: mpd help worker"],
  ];
  const options: [string, string][] = [
    ['-V, --version', 'print the version'],
    ['-h, --help', 'show this help'],
  ];
  const width = Math.max(...[...commands, ...options].map(([label]) => label.length));
  const rows = (entries: [string, string][]) => entries.map(([label, text]) => `  ${label.padEnd(width)}  ${text}`);
  return [
    'Usage: mpd <command> [options]',
    '',
    "mpd runs a pipeline's modules on worker machines: one orchestrator, any number of workers.",
    'Pipeline files may be TypeScript (.ts): mpd loads them itself.',
    '',
    'Commands:',
    ...rows(commands),
    '',
    'Options:',
    ...rows(options),
    '',
    'Run "mpd <command> --help" for its flags and environment variables.',
    'mpd-orchestrator and mpd-worker are aliases of "mpd orchestrator" and "mpd worker".',
    '',
  ].join('\n');
}

/** Writes `message` and the pointer to the help to stderr; the exit code of a bad command line. */
function usageError(message: string): number {
  process.stderr.write(`mpd: ${message}\nRun "mpd help" for the commands.\n`);
  return EXIT_USAGE;
}

/** Runs a subcommand in this process; it owns the process from here, and exits it itself. */
async function runCommand(name: CommandName, argv: string[]): Promise<void> {
  registerTypeScript();
  stopWhenScriptShellExits(`mpd-${name}`);
  const options = { name: `mpd ${name}` };
  if (name === 'orchestrator') {
    const { runOrchestratorCli } = await import('@mpd/orchestrator/cli');
    await runOrchestratorCli(argv, options);
  } else {
    const { runWorkerCli } = await import('@mpd/worker/cli');
    await runWorkerCli(argv, options);
  }
}

/**
 * Runs `mpd ARGV…` (the arguments after `mpd`). Resolves to the exit code for what `mpd`
 * answers itself (help, version, a usage error: 0 or 2), or to `undefined` once a subcommand
 * runs: the subcommand exits the process itself (see `runOrchestratorCli`, `runWorkerCli`).
 */
export async function runMpd(argv: readonly string[]): Promise<number | undefined> {
  const [first, ...rest] = argv;
  if (isCommand(first)) {
    await runCommand(first, rest);
    return undefined;
  }
  switch (first) {
    case '-V':
    case '--version':
      process.stdout.write(`${version()}\n`);
      return EXIT_OK;
    case '-h':
    case '--help':
      process.stdout.write(helpText());
      return EXIT_OK;
    case 'help': {
      const [topic] = rest;
      if (topic === undefined) {
        process.stdout.write(helpText());
        return EXIT_OK;
      }
      if (isCommand(topic)) {
        await runCommand(topic, ['--help']);
        return undefined;
      }
      return usageError(
        `no help for unknown command "${topic}"; the commands are: ${Object.keys(COMMANDS).join(', ')}`,
      );
    }
    case undefined:
      process.stderr.write(helpText());
      return EXIT_USAGE;
    default: {
      // Loaded here, as the subcommands are: `mpd --version` and `mpd help` load no server code.
      const { unknownOptionName } = await import('@mpd/server-kit');
      return usageError(
        first.startsWith('-')
          ? `unknown option "${unknownOptionName(first)}" before a command; the commands are: ${Object.keys(COMMANDS).join(', ')}`
          : `unknown command "${first}"; the commands are: ${Object.keys(COMMANDS).join(', ')}`,
      );
    }
  }
}
