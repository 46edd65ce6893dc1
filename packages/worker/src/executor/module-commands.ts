/**
 * `ctx.exec` and `ctx.spawn`: commands that belong to the module. Each is started in the
 * module's process (its module host, or the worker with `isolation: 'none'`), so it is in that
 * process's group: with process isolation the worker stops the whole group on cancel, timeout
 * and shutdown (SIGTERM, SIGKILL after the kill grace), grandchildren included. The command
 * itself also gets SIGTERM as soon as the module's signal aborts (Node's `signal` option).
 */
import { type ChildProcess, spawn as spawnChild } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import type { ExecOptions, ExecResult, ModuleContext, SpawnCommandOptions } from '@mpd/pipeline';
import { ByteLineSplitter } from './module-output.js';

/** The most stdout (and, apart, stderr) `ctx.exec` keeps: 16 MiB (Node's `execFile` keeps 1 MiB). */
export const DEFAULT_EXEC_MAX_BUFFER_BYTES = 16 * 1024 * 1024;

/** How much of a failed command's stderr its error message ends with (characters). */
const STDERR_IN_MESSAGE = 2_000;

/**
 * A command run by `ctx.exec` exited non-zero, was killed by a signal, or wrote more than
 * `maxBufferBytes`. Its output is kept whole in `stdout` and `stderr`.
 */
export class CommandFailedError extends Error {
  override readonly name = 'CommandFailedError';
  constructor(
    message: string,
    /** The command as given to `ctx.exec`. */
    readonly file: string,
    /** Its exit code; null when a signal ended it. */
    readonly exitCode: number | null,
    /** The signal that ended it, if one did. */
    readonly signal: NodeJS.Signals | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

/** What the commands of one execution are bound to. */
export interface CommandScope {
  /** The module's signal: a command gets SIGTERM when it aborts; `exec` then rejects with its reason. */
  signal: AbortSignal;
  /** The default `cwd`. */
  workingDirectory: string;
  /** The run's variables (`ctx.env`), set on top of the worker's environment. */
  env: Readonly<Record<string, string>>;
  /**
   * Where the lines a command writes to its stdout or stderr go (the module's output), as they
   * come: the whole lines of each read of the pipe, as the bytes the command wrote, each line
   * ending with its `\n` (see `ByteLineSplitter`). `exec` keeps its output as well; `spawn`
   * passes each piped stream on unchanged to the module, which reads it as before. A promise
   * returned means "full": the command's stream is not read further until it resolves (so the
   * command waits, as it would for a terminal, rather than its lines piling up in memory).
   */
  onOutput?: ((stream: 'stdout' | 'stderr', lines: Buffer) => void | Promise<void>) | undefined;
  /**
   * The execution's secret values (UTF-8, those its masker masks): a command's line longer than
   * `LIMITS.output.maxLineLength` is given to `onOutput` in pieces, masked each alone, and never
   * cut inside one of them (see `ByteLineSplitter.secrets`). @default none
   */
  secrets?: readonly Buffer[] | undefined;
  /**
   * Whether this process's own stdout and stderr are the module's output already (a module host:
   * the worker reads its two pipes and ships what comes as the running module's lines). A command
   * given an inherited stream (`'inherit'`) then writes straight into the worker's pipe, with no
   * read or copy here. Otherwise (`--isolation none`: the worker's own stdout and stderr, not
   * captured) such a stream becomes a pipe this process reads into `onOutput` alone. @default false
   */
  ownOutputCaptured?: boolean | undefined;
}

/**
 * Starts `file` as one of the module's commands.
 */
function startCommand(
  scope: CommandScope,
  file: string,
  args: readonly string[],
  cwd: string | undefined,
  env: ExecOptions['env'],
  stdio: SpawnCommandOptions['stdio'],
): ChildProcess {
  return spawnChild(file, [...args], {
    cwd: cwd ?? scope.workingDirectory,
    env: { ...process.env, ...scope.env, ...env },
    stdio,
    signal: scope.signal,
    killSignal: 'SIGTERM',
  });
}

// `spawn` and `exec` are made by these factories rather than written inline: under tsx (how the
// CLIs and the module hosts run), every function written where it gets a name costs a
// `defineProperty` of that name each time it is created, for every module. `createModuleContext`
// calls them directly (`ctx.spawn`, `ctx.exec`); `moduleCommands` makes both.
export const spawnIn =
  (scope: CommandScope): ModuleContext['spawn'] =>
  (file, args = [], options = {}) => {
    const { onOutput } = scope;
    const stdio = options.stdio ?? 'pipe';
    const captured = onOutput !== undefined && !scope.ownOutputCaptured ? capturedInherited(stdio) : undefined;
    const child = startCommand(scope, file, args, options.cwd, options.env, captured?.stdio ?? stdio);
    if (onOutput)
      for (const stream of ['stdout', 'stderr'] as const) {
        const source = child[stream];
        if (!source) continue;
        let given: Readable | null = null;
        // An inherited stream made a pipe: its lines go to onOutput alone and the module gets no
        // stream, as with 'inherit' (nothing copied for it; the command waits only while onOutput
        // is full). `child.stdio` keeps the pipe: Node's own, whose end the child's 'close' waits
        // for, so every line is passed on before the module sees 'close'.
        if (captured?.[stream]) forwardLines(source, stream, onOutput, scope.secrets);
        else given = teeLines(source, stream, onOutput, scope.secrets);
        // Only `child.stdout`/`child.stderr` change: `child.stdio` keeps the originals, as Node
        // resumes (drains) every stream of it not read when the child exits, which would empty a
        // copy the module had not read yet.
        Object.defineProperty(child, stream, { value: given, configurable: true, enumerable: true, writable: true });
      }
    return child;
  };

/**
 * A `ctx.spawn`'s `stdio` with each inherited stdout or stderr (`'inherit'`, or this process's
 * own stream given as its descriptor, 1 or 2, or as `process.stdout`/`process.stderr`) made a
 * pipe, and which of the two were: where this process's own output is not captured (the worker
 * with `--isolation none`), a command writing to it would write to the worker's stdout, unmasked
 * and given to no module (before round H). Undefined when neither is inherited.
 */
function capturedInherited(
  stdio: NonNullable<SpawnCommandOptions['stdio']>,
): { stdio: SpawnCommandOptions['stdio']; stdout: boolean; stderr: boolean } | undefined {
  const each = typeof stdio === 'string' ? [stdio, stdio, stdio] : [...stdio];
  const inherited = (index: 1 | 2): boolean =>
    each[index] === 'inherit' ||
    each[index] === index ||
    each[index] === (index === 1 ? process.stdout : process.stderr);
  const stdout = inherited(1);
  const stderr = inherited(2);
  if (!stdout && !stderr) return undefined;
  if (stdout) each[1] = 'pipe';
  if (stderr) each[2] = 'pipe';
  return { stdio: each as SpawnCommandOptions['stdio'], stdout, stderr };
}

/**
 * Copies each line of a piped stream of a command to `onOutput`, and makes the module a stream
 * (its `child.stdout`/`child.stderr`, returned) with the same bytes: a pass-through written from the original
 * as it is read, so the module reads it whenever it likes (our 'data' listener makes the original
 * flow: a module reading the original itself would miss what came before it did). The original
 * waits while either reader is full, `onOutput` (its promise) or the module's copy (its write
 * said so, until its 'drain'), so that neither piles the command's output up in memory; the
 * command then waits, as it would for a terminal. Not `original.pipe(copy)`: a pipe resumes the
 * original at the copy's 'drain' whoever paused it, so a module reading its copy made the
 * command's stream run on while `onOutput` was full (a module host held 24 MB of a command's
 * 25.6 MB, past its 4 MiB bound: `hosted-execution.spec.ts`), and `onOutput`'s resume made it
 * run on while the module had not read its copy (which then held all of it).
 */
function teeLines(
  source: Readable,
  stream: 'stdout' | 'stderr',
  onOutput: (stream: 'stdout' | 'stderr', lines: Buffer) => void | Promise<void>,
  secrets: readonly Buffer[] | undefined,
): Readable {
  const copy = new PassThrough();
  const gate = new ReadGate(source);
  // Whether the copy is full, until its 'drain' (or its close: a module that destroyed its copy
  // reads no more, and the command's stream goes on for onOutput alone).
  let copyFull = false;
  const copyDrained = (): void => {
    if (!copyFull) return;
    copyFull = false;
    gate.release();
  };
  copy.on('drain', copyDrained);
  copy.once('close', copyDrained);
  forwardLines(source, stream, onOutput, secrets, gate, (chunk) => {
    if (copy.destroyed || copy.write(chunk) || copyFull) return;
    copyFull = true;
    gate.hold();
  });
  source.on('end', () => copy.end());
  return copy;
}

/**
 * Pauses a stream while any of its readers waits (each {@link ReadGate.hold} until its
 * {@link ReadGate.release}), and resumes it once none does: each reader's pause on its own would
 * be undone by another's resume.
 */
class ReadGate {
  private holds = 0;

  constructor(private readonly source: Readable) {}

  /** Pauses the stream until a matching {@link ReadGate.release} (and every other hold's). */
  hold(): void {
    this.holds++;
    this.source.pause();
  }

  readonly release = (): void => {
    if (--this.holds === 0) this.source.resume();
  };

  /** Holds the stream until `until` settles. */
  holdUntil(until: Promise<void>): void {
    this.hold();
    void until.then(this.release, this.release);
  }

  /**
   * Pauses the stream again if something else resumed it while a reader waits: Node resumes a
   * child's streams when it exits, and a process it left behind may still write to them.
   */
  keepHeld(): void {
    if (this.holds > 0) this.source.pause();
  }
}

/**
 * Passes the whole lines of `source` to `onOutput` as they come, as bytes, a block per chunk, and
 * each chunk to `alsoTo` after; `source` is paused while `onOutput` says it is full.
 */
function forwardLines(
  source: Readable,
  stream: 'stdout' | 'stderr',
  onOutput: (stream: 'stdout' | 'stderr', lines: Buffer) => void | Promise<void>,
  secrets: readonly Buffer[] | undefined,
  gate = new ReadGate(source),
  alsoTo?: (chunk: Buffer) => void,
): void {
  const lines = new ByteLineSplitter(
    (block) => {
      const full = onOutput(stream, block);
      if (full !== undefined) gate.holdUntil(full);
    },
    undefined,
    secrets,
  );
  source.on('data', (chunk: Buffer) => {
    lines.push(chunk);
    alsoTo?.(chunk);
    gate.keepHeld();
  });
  source.on('end', () => lines.flush());
}

export const execIn =
  (scope: CommandScope): ModuleContext['exec'] =>
  (file, args = [], options = {}) =>
    runCommand(scope, file, args, options);

/** `ctx.exec` and `ctx.spawn` for one execution. */
export function moduleCommands(scope: CommandScope): Pick<ModuleContext, 'exec' | 'spawn'> {
  return { spawn: spawnIn(scope), exec: execIn(scope) };
}

/** `ctx.exec`: runs `file` to its end, its output kept. */
function runCommand(
  scope: CommandScope,
  file: string,
  args: readonly string[],
  options: ExecOptions,
): Promise<ExecResult> {
  return new Promise<ExecResult>((resolve, reject) => {
    if (scope.signal.aborted) {
      reject(scope.signal.reason);
      return;
    }
    const maxBytes = options.maxBufferBytes ?? DEFAULT_EXEC_MAX_BUFFER_BYTES;
    const child = startCommand(scope, file, args, options.cwd, options.env, [
      options.input === undefined ? 'ignore' : 'pipe',
      'pipe',
      'pipe',
    ]);
    const output = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    const sizes = { stdout: 0, stderr: 0 };
    let overflow: 'stdout' | 'stderr' | undefined;
    for (const stream of ['stdout', 'stderr'] as const) {
      const { onOutput } = scope;
      if (onOutput) {
        // The module's output, line by line as it comes (the result keeps the whole text too).
        forwardLines(child[stream]!, stream, onOutput, scope.secrets);
      }
      child[stream]!.on('data', (chunk: Buffer) => {
        sizes[stream] += chunk.length;
        if (sizes[stream] > maxBytes) {
          overflow ??= stream;
          child.kill('SIGTERM');
          return;
        }
        output[stream].push(chunk);
      });
    }
    let settled = false;
    const finish = (error: unknown, result?: ExecResult): void => {
      if (settled) return;
      settled = true;
      if (scope.signal.aborted) reject(scope.signal.reason);
      else if (error !== undefined) reject(error);
      else resolve(result!);
    };
    // Spawn failures (ENOENT, EACCES) and the abort; 'close' may follow: the first one counts.
    child.on('error', (error) => finish(error));
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(output.stdout).toString('utf8');
      const stderr = Buffer.concat(output.stderr).toString('utf8');
      if (overflow) {
        finish(
          new CommandFailedError(
            `Command '${file}' wrote more than ${maxBytes} bytes to ${overflow} (maxBufferBytes) and was stopped`,
            file,
            code,
            signal,
            stdout,
            stderr,
          ),
        );
      } else if (code === 0 || (code !== null && options.allowNonZeroExit)) {
        finish(undefined, { stdout, stderr, exitCode: code });
      } else {
        const how = code === null ? `was killed by ${signal}` : `exited with code ${code}`;
        const tail = stderr.trim().slice(-STDERR_IN_MESSAGE);
        finish(
          new CommandFailedError(
            `Command '${file}' ${how}${tail ? `: ${tail}` : ''}`,
            file,
            code,
            signal,
            stdout,
            stderr,
          ),
        );
      }
    });
    if (options.input !== undefined) {
      // A command that exits without reading its input closes the pipe: not an error of ours.
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(options.input);
    }
  });
}
