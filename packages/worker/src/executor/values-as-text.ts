/**
 * A module's result and what it throws, as text: shared by the worker (in-process executions)
 * and the module host (`module-host-main.ts`), so this file imports nothing heavier than the
 * worker's errors (a host starts faster for it).
 */
import { inspect } from 'node:util';
import { WorkerError } from '../errors.js';

/**
 * A module's result as JSON text (`"null"` for `undefined`).
 * @throws WorkerError (code `ResultNotSerializable`) naming the module.
 */
export function serialise(moduleName: string, value: unknown): string {
  try {
    return JSON.stringify(value === undefined ? null : value) ?? 'null';
  } catch (cause) {
    throw new WorkerError(
      'ResultNotSerializable',
      `Module '${moduleName}' returned a result that is not JSON-serialisable: ${(cause as Error).message}`,
      { cause },
    );
  }
}

/**
 * A thrown value that is not an Error, as text: its JSON when it has one, else `String(value)`;
 * never throws, whatever the value (a null-prototype object that refers to itself has neither a
 * JSON text nor a `toString`: it gets `util.inspect`'s text, bounded).
 */
export function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    try {
      return String(value);
    } catch {
      try {
        return inspect(value, { depth: 2, maxArrayLength: 10, maxStringLength: 200, breakLength: Infinity });
      } catch {
        return Object.prototype.toString.call(value);
      }
    }
  }
}

/** What an execute answer says of a thrown value (before masking). */
export interface ThrownDescription {
  /** The Error's message, or `Module threw a non-Error value: …`. */
  message: string;
  /** The Error's name (its class), or the value's `typeof`. */
  type: string;
  /** The Error's stack; null for a value that is not an Error. */
  stack: string | null;
}

/** Describes a thrown value; never throws (an Error's getters may: they are read once, guarded). */
export function describeThrown(error: unknown): ThrownDescription {
  if (error instanceof Error) {
    const read = <T>(get: () => T, fallback: T): T => {
      try {
        return get();
      } catch {
        return fallback;
      }
    };
    const message = read(() => String(error.message), '(the error has no readable message)');
    return {
      message,
      type: read(() => String(error.name || error.constructor.name), 'Error'),
      stack: read(() => (error.stack === undefined ? null : String(error.stack)), null),
    };
  }
  return { message: `Module threw a non-Error value: ${safeString(error)}`, type: typeof error, stack: null };
}
