import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.spec.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Most of these tests wait (for heartbeats, timeouts, kill graces, partitions) rather than
    // compute: three files at a time keep the suite well under its 8-minute budget on 2 cores
    // (one at a time, the default there, took about 380 s of the suite's 7 minutes).
    maxWorkers: 3,
    minWorkers: 1,
  },
});
