// The limits entry alone: module hosts load this file, and need no zod or ts-rest.
import { describeBytes, resultLimitProblem } from '@mpd/contract/limits';
import { ResultLimitError } from '../errors.js';

/**
 * A module's result as JSON text, checked against the limits before it is sent: at most
 * `maxResultBytes` (the worker's `--max-result-size`) in UTF-8 bytes, nested at most the
 * contract's `LIMITS.json.maxDepth` deep. Called where the executor serialises the result.
 * @returns `serializedResult`, unchanged
 * @throws ResultLimitError naming the module, the result's size (or depth) and the limit; the
 *   module fails with it, alone.
 */
export function checkedResult(moduleName: string, serializedResult: string, maxResultBytes: number): string {
  const problem = resultLimitProblem(serializedResult, maxResultBytes);
  if (problem === undefined) return serializedResult;
  const what = problem.code === 'ResultTooLarge' ? TOO_LARGE_ADVICE : 'return flatter data';
  throw new ResultLimitError(problem.code, `Module '${moduleName}' returned ${problem.phrase}: ${what}`);
}

const TOO_LARGE_ADVICE =
  "the worker's --max-result-size (maxResultBytes) sets the limit; return less, or keep large data elsewhere (a file, an artifact store) and return where it is";

/**
 * The error {@link checkedResult} throws for a result of `bytes` (UTF-8 bytes of its JSON) over
 * `maxResultBytes`, the same message (`resultLimitProblem`'s phrase): for a result the worker
 * knows by its file's size only (a module host's `resultFile`), checked before it is uploaded.
 */
export function resultTooLargeError(moduleName: string, bytes: number, maxResultBytes: number): ResultLimitError {
  return new ResultLimitError(
    'ResultTooLarge',
    `Module '${moduleName}' returned a result of ${describeBytes(bytes)} as JSON, over the limit of ${describeBytes(maxResultBytes)}: ${TOO_LARGE_ADVICE}`,
  );
}
