import { format } from 'node:util';
import type { CliRunEnd } from './unknown-flags.js';

/** What `process.exit` threw in place of exiting, with its code. */
class Exited extends Error {
  constructor(readonly code: number) {
    super(`process.exit(${code})`);
  }
}

/**
 * Whether an {@link answeredInProcess} call runs: a second one meanwhile would save the first
 * one's stand-ins as the originals, and whichever ended last would put back a stand-in.
 */
let busy = false;

/** The console methods {@link answeredInProcess} replaces, and the stream each one's lines go to. */
const CONSOLE_STREAMS = { log: 'stdout', info: 'stdout', error: 'stderr', warn: 'stderr' } as const;

/**
 * A CLI's in-process entry (`runWorkerCli`, `runOrchestratorCli`): the command line after the
 * command's name, the directory relative paths are resolved against, and the hook it awaits once
 * its settings are valid, before it loads anything (server-kit's `CliRunOptions`).
 */
export type CliEntry = (argv: string[], options: { cwd: string; beforeLoad: () => void }) => Promise<unknown>;

/**
 * Runs a CLI's command line in this process, as its `main.ts` does, for a command line it answers
 * before it loads anything (`--help`, an unknown flag, a bad setting, the TLS files): its exit
 * code and what it wrote. `process.exit`, the two streams' `write` and `console.log`/`info` (to
 * stdout) and `console.error`/`warn` (to stderr, each a `util.format` line: a test runner's own
 * console does not write through `process.stdout`) are replaced meanwhile and restored after; the
 * `MPD_*` variables are those of `env` only (the others are put back after).
 * A process adds nothing there but its start (tsx: about half a second of CPU each; round T):
 * `packages/cli/test/cli-light-start.spec.ts` exits such command lines as real processes.
 * Runs one command line at a time (they share this process's globals): await each.
 * @param cwd what `entry` resolves relative paths against (the real CLI's INIT_CWD) @default process.cwd()
 * @throws Error when the command went past its settings (its `beforeLoad` ran) or did not exit;
 *   at once, replacing nothing, when another call has not ended yet
 */
export async function answeredInProcess(
  entry: CliEntry,
  args: string[],
  env: Record<string, string> = {},
  cwd = process.cwd(),
): Promise<CliRunEnd & { exitCode: number }> {
  if (busy) throw new Error('answeredInProcess: another call is running (they share process globals): await each');
  busy = true;
  const saved = { ...process.env };
  const { exit } = process;
  const writes = { stdout: process.stdout.write, stderr: process.stderr.write };
  const consoles = { log: console.log, info: console.info, error: console.error, warn: console.warn };
  for (const name of Object.keys(process.env)) if (name.startsWith('MPD_')) delete process.env[name];
  Object.assign(process.env, env);
  const written = { stdout: '', stderr: '' };
  process.exit = ((code?: number | string | null) => {
    throw new Exited(Number(code ?? 0));
  }) as typeof process.exit;
  for (const stream of ['stdout', 'stderr'] as const) {
    process[stream].write = ((chunk: string | Uint8Array) => {
      written[stream] += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
      return true;
    }) as typeof process.stdout.write;
  }
  for (const [method, stream] of Object.entries(CONSOLE_STREAMS) as [
    keyof typeof CONSOLE_STREAMS,
    'stdout' | 'stderr',
  ][]) {
    console[method] = (...data: unknown[]) => {
      written[stream] += `${format(...data)}\n`;
    };
  }
  try {
    const outcome: unknown = await entry(args, {
      cwd,
      beforeLoad: () => {
        throw new Error(`${args.join(' ')}: went past its settings`);
      },
    }).catch((error: unknown) => error);
    if (!(outcome instanceof Exited)) throw outcome instanceof Error ? outcome : new Error('it did not exit');
    return { exitCode: outcome.code, ...written };
  } finally {
    process.exit = exit;
    process.stdout.write = writes.stdout;
    process.stderr.write = writes.stderr;
    Object.assign(console, consoles);
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
    busy = false;
  }
}
