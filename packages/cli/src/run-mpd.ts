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

/**
 * The edit distance between `a` and `b` (insertions, deletions, substitutions and swaps of two
 * neighbours, each 1: optimal string alignment), as commander measures a flag's to suggest one.
 */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i || j));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
      }
    }
  }
  return d[a.length]![b.length]!;
}

/** The most edits a word may be from a command to be named in a usage error: a typo's. */
const TYPO_DISTANCE = 2;

/**
 * An unknown command word as a usage error shows it: quoted (JSON: control characters escaped),
 * when it is a typo of a command, at most {@link TYPO_DISTANCE} edits from one (`"wroker"`,
 * `"Worker"`); any other word by its length alone (`a word of 12 characters`): a word put first
 * by mistake may be a token or a password (`mpd "$TOKEN" worker`), to be printed to neither a
 * terminal nor a CI log, as an unknown option's value is not (`unknownOptionName`).
 */
function shownCommand(word: string): string {
  const typo = Object.keys(COMMANDS).some((command) => editDistance(word.toLowerCase(), command) <= TYPO_DISTANCE);
  return typo ? JSON.stringify(word) : `(a word of ${word.length} characters, not shown: it may be a secret)`;
}

/** Writes `message` and the pointer to the help to stderr; the exit code of a bad command line. */
function usageError(message: string): number {
  process.stderr.write(`mpd: ${message}\nRun "mpd help" for the commands.\n`);
  return EXIT_USAGE;
}

/** Runs a subcommand in this process; it owns the process from here, and exits it itself. */
async function runCommand(name: CommandName, argv: string[]): Promise<void> {
  stopWhenScriptShellExits(`mpd-${name}`);
  // TypeScript registered only once the subcommand's settings are valid, before it loads the
  // pipeline file: `mpd worker --help` or a bad setting does not load tsx and esbuild.
  const options = { name: `mpd ${name}`, beforeLoad: registerTypeScript };
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
        `no help for unknown command ${shownCommand(topic)}; the commands are: ${Object.keys(COMMANDS).join(', ')}`,
      );
    }
    case undefined:
      process.stderr.write(helpText());
      return EXIT_USAGE;
    default: {
      // Loaded here, as the subcommands are: `mpd --version` and `mpd help` load no server code.
      const { unknownOptionName } = await import('@mpd/server-kit/cli');
      return usageError(
        first.startsWith('-')
          ? `unknown option "${unknownOptionName(first)}" before a command; the commands are: ${Object.keys(COMMANDS).join(', ')}`
          : `unknown command ${shownCommand(first)}; the commands are: ${Object.keys(COMMANDS).join(', ')}`,
      );
    }
  }
}
