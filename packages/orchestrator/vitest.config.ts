import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Two files at a time: one, vitest's default on 2 cores, ran them strictly in turn on CI, where
    // cli/main.spec.ts took 50 s of process starts and the 35 files' forks and imports about as
    // long as their tests. Figures, and two copies side by side: docs/round-p/p1.md.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
