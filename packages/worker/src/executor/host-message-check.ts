import { dirname, normalize } from 'node:path';
import { LIMITS } from '@mpd/contract/limits';
import { resultFilePath } from './result-file.js';

/**
 * The shape check of every message a module host sends the worker (`FromHost`, `host-protocol.ts`), made before
 * the worker acts on it: the host's channel is a pipe a module's code can write on too
 * (`fs.writeSync(3, …)`, a command it starts), so a line that is JSON is not yet a message. A hand
 * check per `type` (a few `typeof`s: this runs for every message of every module), not a zod
 * schema. A line that fails it breaks the host's channel (`ModuleHost.channelBrokenBy`), as a
 * line that is not JSON does.
 */
const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;
const optional = (value: unknown, check: (value: unknown) => boolean): boolean => value === undefined || check(value);
const isString = (value: unknown): value is string => typeof value === 'string';
const isDigest = (value: unknown): boolean => isRecord(value) && isString(value.sha256) && isCount(value.size);
const isThrown = (value: unknown): boolean =>
  isRecord(value) && isString(value.message) && isString(value.type) && (value.stack === null || isString(value.stack));
const isStringUpTo = (value: unknown, maxLength: number): boolean => isString(value) && value.length <= maxLength;
const SUBJECT_KEYS: ReadonlySet<string> = new Set(['module', 'artifact', 'result']);
/**
 * A `TransferSubject`: the module, and the artifact's name or the module whose result it is; no
 * other key (the worker's log line of the transfer names these, so a host could otherwise set
 * that line's `level`, `workerId` or `msg`: review of round L), each within the contract's
 * bounds (`LIMITS.moduleName`, `LIMITS.artifact.name`).
 */
const isSubject = (value: unknown): boolean => {
  if (!isRecord(value)) return false;
  for (const key in value) if (!SUBJECT_KEYS.has(key)) return false;
  return (
    isStringUpTo(value.module, LIMITS.moduleName.maxLength) &&
    (value.artifact === undefined) !== (value.result === undefined) &&
    optional(value.artifact, (name) => isStringUpTo(name, LIMITS.artifact.name.maxLength)) &&
    optional(value.result, (name) => isStringUpTo(name, LIMITS.moduleName.maxLength))
  );
};
const LEVELS: ReadonlySet<unknown> = new Set(['debug', 'info', 'warn', 'error']);
const isLogLine = (value: unknown): boolean =>
  isRecord(value) && LEVELS.has(value.level) && isString(value.message) && optional(value.fields, isRecord);

/**
 * Whether `path`, an archive a host asks the worker to upload (`put`, `putPacking`), is a file
 * right in the host's scratch directory, where `ctx.artifacts` packs every archive
 * (`module-artifacts.ts`); any path without a scratch directory (the worker then has no store
 * and refuses the call).
 */
const inScratchDir = (path: string, scratchDir: string | null): boolean =>
  scratchDir === null || (dirname(path) === scratchDir && normalize(path) === path);
const OUTSIDE_SCRATCH_DIR = "an artifact-call to upload a file outside the module host's scratch directory";

/**
 * Whether `message` (a parsed line of a host's channel) is a `FromHost` message: `undefined`
 * when it is, else what is wrong with it (a short phrase naming its type or field, for the
 * execution's error message). Extra fields are let through (the host's own messages have none),
 * but in an artifact call's `subject`.
 *
 * A `done`'s `resultFile` must be exactly its execution's file in `scratchDir`, the host's
 * artifact scratch directory (`resultFilePath`): the worker uploads that file, so a host (a
 * module's code writing on fd 3) must not make it upload any other file of the worker's machine
 * (`/etc/shadow`, a key, another execution's result). Without a scratch directory (null: the
 * worker has no orchestrator) no `resultFile` is taken. For the same reason an artifact call's
 * upload (`put`, `putPacking`) must name a file right in `scratchDir`.
 * @param scratchDir the `artifactScratchDir` the host was given in `init`. @default null
 */
export function fromHostProblem(message: unknown, scratchDir: string | null = null): string | undefined {
  if (!isRecord(message))
    return `${message === null ? 'null' : Array.isArray(message) ? 'an array' : typeof message} is not a message`;
  switch (message.type) {
    case 'ready':
      return undefined;
    case 'init-failed':
      return isString(message.message) ? undefined : 'an init-failed message without its message';
    case 'logs': {
      if (!isString(message.executionId)) return 'a logs message without its executionId';
      const lines = message.lines;
      if (!Array.isArray(lines)) return 'a logs message without its lines';
      for (const line of lines) if (!isLogLine(line)) return 'a logs message with a line that is not a log line';
      return undefined;
    }
    case 'artifact-call': {
      if (!isString(message.executionId) || !isCount(message.callId))
        return 'an artifact-call message without its executionId or callId';
      if (!optional(message.subject, isSubject)) return 'an artifact-call message with a bad subject';
      switch (message.op) {
        case 'put':
          if (!isString(message.path) || !optional(message.digest, isDigest)) return 'a bad artifact-call put';
          return inScratchDir(message.path, scratchDir) ? undefined : OUTSIDE_SCRATCH_DIR;
        case 'putPacking':
          if (!isString(message.path)) return 'a bad artifact-call putPacking';
          return inScratchDir(message.path, scratchDir) ? undefined : OUTSIDE_SCRATCH_DIR;
        case 'checkOut':
        case 'follow':
          return isString(message.sha256) ? undefined : `a bad artifact-call ${message.op}`;
        default:
          return 'an artifact-call message of no known op';
      }
    }
    case 'artifact-abandon':
      return isCount(message.callId) ? undefined : 'an artifact-abandon message without its callId';
    case 'artifact-pack-progress':
      return isCount(message.callId) && isCount(message.written) ? undefined : 'a bad artifact-pack-progress message';
    case 'artifact-pack-ended':
      return isCount(message.callId) && optional(message.digest, isDigest) && optional(message.message, isString)
        ? undefined
        : 'a bad artifact-pack-ended message';
    case 'returned':
      return isString(message.executionId) && typeof message.ok === 'boolean'
        ? undefined
        : 'a returned message without its executionId or ok';
    case 'stopped':
      return isString(message.executionId) ? undefined : 'a stopped message without its executionId';
    case 'done':
      if (
        !isString(message.executionId) ||
        !(message.leftoverChildren === null || isCount(message.leftoverChildren)) ||
        typeof message.marked !== 'boolean'
      )
        return 'a done message without its executionId, leftoverChildren or marked';
      if (message.ok === true) {
        if (message.resultFile === undefined)
          return isString(message.resultText) ? undefined : 'a done message (ok) without its resultText';
        if (message.resultText !== undefined) return 'a done message (ok) with both a resultText and a resultFile';
        if (scratchDir === null)
          return 'a done message with a resultFile, from a module host given no scratch directory';
        return message.resultFile === resultFilePath(scratchDir, message.executionId)
          ? undefined
          : "a done message whose resultFile is not its execution's result file in the module host's scratch directory";
      }
      if (message.ok === false)
        return isThrown(message.thrown) ? undefined : 'a done message (not ok) without its thrown error';
      return 'a done message without ok';
    case 'crash':
      return optional(message.executionId, isString) && isString(message.what) && isThrown(message.thrown)
        ? undefined
        : 'a bad crash message';
    default:
      return 'a message of no known type';
  }
}
