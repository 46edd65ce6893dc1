import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { defineConfig } from 'vitest/config';

/**
 * The longest files, longest first as CI measured them: they start first, and the short files
 * fill in beside them. On a clean clone vitest knows no durations and sorts larger files first,
 * which started two of these late, to run alone at the package's end.
 */
const LONGEST = [
  /\/cli\/main\.spec\.ts$/,
  /\/hosted-stops\.spec\.ts$/,
  /\/hosted-execution\.spec\.ts$/,
  /\/hosted-artifacts\.spec\.ts$/,
];

/** Vitest's order (the last run's durations, else file sizes), the {@link LONGEST} files first. */
class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (file: TestSpecification): number => {
      const index = LONGEST.findIndex((pattern) => pattern.test(file.moduleId));
      return index < 0 ? LONGEST.length : index;
    };
    const sorted = await super.sort(files);
    return sorted
      .map((file, index) => ({ file, index, rank: rank(file) }))
      .sort((a, b) => a.rank - b.rank || a.index - b.index)
      .map(({ file }) => file);
  }
}

export default defineConfig({
  test: {
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Two files at a time: one, vitest's default on 2 cores, ran them strictly in turn on CI. The
    // module-host specs (hosted-*.spec.ts, about 190 s together, split in three to balance) and
    // cli/main.spec.ts (about 80 s) wait on their processes as much as they compute. Figures, and
    // two copies side by side: docs/round-p/p1.md.
    maxWorkers: 2,
    minWorkers: 1,
    sequence: { sequencer: LongestFirst },
  },
});
