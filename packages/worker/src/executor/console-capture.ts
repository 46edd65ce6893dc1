/**
 * `console.*` of modules that run in the worker's own process (`isolation: 'none'`), captured
 * per execution: several modules share that process and its `console`, so the global console's
 * methods look up the execution they are called from (an `AsyncLocalStorage`, which follows the
 * module's promises, timers and callbacks) and write to that execution's output; called from
 * anywhere else (the worker's own code, a module's code still running after its execution
 * ended) they write where they always did. A module host needs none of this: it runs one module
 * at a time, and the worker reads its stdout and stderr.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Console } from 'node:console';
import { Writable } from 'node:stream';
import { LineSplitter } from './module-output.js';

/** The console methods that print (each goes to the calling execution's console, if any). */
const METHODS = [
  'log',
  'info',
  'debug',
  'warn',
  'error',
  'trace',
  'dir',
  'dirxml',
  'table',
  'group',
  'groupCollapsed',
  'groupEnd',
  'count',
  'countReset',
  'time',
  'timeEnd',
  'timeLog',
  'assert',
] as const;

const current = new AsyncLocalStorage<ConsoleCapture>();
let installed = false;

/**
 * Makes the global console's methods ask {@link current} first (once per process, at the first
 * capture: a worker that runs every module in a host never pays for the AsyncLocalStorage).
 */
function install(): void {
  if (installed) return;
  installed = true;
  const global = console as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const method of METHODS) {
    const original = global[method];
    if (typeof original !== 'function') continue;
    global[method] = function (this: unknown, ...args: unknown[]): unknown {
      const capture = current.getStore();
      if (capture === undefined || capture.ended) return original.apply(console, args);
      return (capture.console as unknown as Record<string, (...args: unknown[]) => unknown>)[method]!(...args);
    };
  }
}

/**
 * One execution's console: what its module prints with `console.*` (stdout: `log`, `info`,
 * `debug`, `dir`, `table`…; stderr: `warn`, `error`, `trace`, `assert`) goes to `onLines` as
 * blocks of whole lines (see `LineSplitter`), from {@link ConsoleCapture.run} until
 * {@link ConsoleCapture.end}.
 */
export class ConsoleCapture {
  /** Set by {@link ConsoleCapture.end}: later calls go to the worker's own console. */
  ended = false;
  readonly console: Console;
  private readonly splitters: LineSplitter[] = [];

  /**
   * @param secrets the execution's secret values (those its masker masks): a long line is never
   *   cut inside one (see `LineSplitter`). @default none
   */
  constructor(onLines: (stream: 'stdout' | 'stderr', lines: string) => void, secrets: readonly string[] = []) {
    const stream = (name: 'stdout' | 'stderr'): Writable => {
      const splitter = new LineSplitter((lines) => onLines(name, lines), undefined, secrets);
      this.splitters.push(splitter);
      // Written synchronously: a console call's lines are in the output when it returns.
      return new Writable({
        decodeStrings: false,
        write(chunk: string | Buffer, _encoding, callback) {
          splitter.push(String(chunk));
          callback();
        },
      });
    };
    this.console = new Console({ stdout: stream('stdout'), stderr: stream('stderr'), colorMode: false });
  }

  /** Runs `work` (and everything it starts) with `console.*` going to this execution. */
  run<T>(work: () => T): T {
    install();
    return current.run(this, work);
  }

  /** The execution ended: a line left unfinished is given, and `console.*` goes back to the worker's own. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const splitter of this.splitters) splitter.flush();
  }
}
