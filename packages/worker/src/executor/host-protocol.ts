/**
 * The messages between the worker and a module host, over the host's IPC channel (Node's
 * `process.send`, JSON). One execution at a time per host; every message of an execution names
 * its `executionId`, so that a late message of an earlier one is told apart.
 */
import type { JsonValue } from '@mpd/pipeline';
import type { ThrownDescription } from './values-as-text.js';

/** What the worker tells a host. */
export type ToHost =
  /** First message: load this pipeline file and check it is the worker's (same fingerprint). */
  | { type: 'init'; sourceFile: string; fingerprint: string; killGraceMs: number }
  /** Run one module. */
  | {
      type: 'execute';
      executionId: string;
      moduleName: string;
      params: JsonValue | undefined;
      results: Record<string, JsonValue>;
      env: Record<string, string>;
      workingDirectory: string;
      workerId: string;
      /** The largest result the module may return (UTF-8 bytes of its JSON): checked in the host, so an oversized one never crosses IPC. */
      maxResultBytes: number;
    }
  /** Abort the module's signal with a `ModuleTimeoutError` (`timeout`) or an `ExecutionCancelledError`. */
  | { type: 'cancel'; executionId: string; reason: 'timeout' | 'cancel'; message: string };

/** A log line of the module, written on the worker's side (masked there). */
export interface HostLogLine {
  type: 'log';
  executionId: string;
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields?: Record<string, unknown>;
}

/** What a host tells the worker. */
export type FromHost =
  /** The pipeline is loaded: the host takes executions. */
  | { type: 'ready' }
  /** The pipeline could not be loaded (or is not the worker's); the host exits. */
  | { type: 'init-failed'; message: string }
  | HostLogLine
  /**
   * The module returned (`resultText`: its result serialised) or threw. `leftoverChildren`:
   * how many processes the host still has as children; a host with any is not reused.
   */
  | ({ type: 'done'; executionId: string; leftoverChildren: number } & (
      { ok: true; resultText: string } | { ok: false; thrown: ThrownDescription }
    ))
  /**
   * An error escaped the module (an unhandled rejection, an uncaught exception): the host's
   * state can no longer be trusted, it exits. `executionId` is the execution it was running, if
   * any.
   */
  | { type: 'crash'; executionId: string | undefined; what: string; thrown: ThrownDescription };
