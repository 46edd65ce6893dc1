/**
 * The order the integration project's files start in: the longest first, so that the two lanes
 * (`maxWorkers: 2`) end together instead of one running a long file alone at the end.
 *
 * Vitest's own order (`BaseSequencer.sort`) is the longest first by the durations it cached in
 * `node_modules/.vite/vitest/results.json`, and the largest file in bytes first where it has none:
 * on a clean clone (CI) there is none, and bytes say little of a file's wall here (a 475-line
 * file of process starts and kills takes minutes, a 691-line in-process file seconds). So the
 * files measured longest ({@link LONGEST}) come first in that order, then the rest in vitest's.
 * A file missing from the list only starts later; nothing a test asserts depends on the order.
 * A listed file that is not on disk (renamed, removed) fails the run at its start ({@link staleLongest}).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { TestSpecification } from 'vitest/node';
import { BaseSequencer } from 'vitest/node';

/**
 * The longest files, longest first (paths from `tests/integration/`), by their wall in the
 * round X baseline (`pnpm test` on main 57c7c1f at load 10-20, `docs/round-x/x3.md`).
 */
export const LONGEST: readonly string[] = [
  'processes/faults.spec.ts', // 193 s
  'faults/limits-results.spec.ts', // 181 s
  'processes/cli.spec.ts', // 118 s
  'faults/isolation-process-trees.spec.ts', // 99 s
  'fuzz/http-fuzz.spec.ts', // 71 s
  'processes/signals.spec.ts', // 52 s
  'faults/liveness-partition.spec.ts', // 51 s
  'deploy/compose-netns.spec.ts', // 47 s
  'faults/attempts-worker-wait.spec.ts', // 40 s
  'processes/artifacts.spec.ts', // 39 s
  'in-process/tls.spec.ts', // 35 s
  'faults/attempts-accept.spec.ts', // 33 s
  'faults/attempts-resend.spec.ts', // 33 s
  'faults/attempts-refused.spec.ts', // 33 s
  'processes/registration.spec.ts', // 33 s
];

/** The paths in {@link LONGEST} with no file under `tests/integration/` (none, when it is kept up). */
export function staleLongest(): string[] {
  return LONGEST.filter((path) => !existsSync(fileURLToPath(new URL(`../${path}`, import.meta.url))));
}

export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const stale = staleLongest();
    // A stale name would only let that file start later, unnoticed: fail loudly instead.
    if (stale.length > 0) {
      throw new Error(`tests/integration/helpers/longest-first.ts: LONGEST lists missing files ${stale.join(', ')}`);
    }
    const sorted = await super.sort(files);
    const rank = (file: TestSpecification): number => {
      const index = LONGEST.findIndex((path) => file.moduleId.endsWith(`/tests/integration/${path}`));
      return index === -1 ? LONGEST.length : index;
    };
    // Array.prototype.sort is stable: the files not listed keep vitest's order among themselves.
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}
