import { testNodeFlags } from '../../packages/test-kit/src/node-flags.js';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.spec.ts'],
    // Generous: these tests start real processes, and must pass while another copy of the suite
    // runs on the same 2 cores (a run of two processes took over 20 s there).
    testTimeout: 60_000,
    hookTimeout: 30_000,
    // Most of these tests wait (for heartbeats, timeouts, kill graces, partitions) rather than
    // compute: two files at a time keep the suite well under its 8-minute budget on 2 cores (one
    // at a time, the default there, took about 380 s of the suite's 7 minutes), and two copies of
    // the suite side by side still pass (three at a time, they did not).
    maxWorkers: 2,
    minWorkers: 1,
    // One temporary directory for the run, removed at its end: TMPDIR of every fork and process.
    globalSetup: ['./helpers/scratch-tmpdir.ts'],
    poolOptions: {
      // The test files' processes, and so the module hosts their in-process workers start (a
      // host's node flags are its worker's), with V8 11's tier-up delayed as test-kit's
      // TEST_NODE_FLAGS delays it for the CLIs the kit starts: they run for seconds, mostly
      // loading code (docs/round-t/t4.md).
      forks: { execArgv: [...testNodeFlags()] },
    },
  },
});
