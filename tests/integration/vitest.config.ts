import { testNodeFlags } from '../../packages/test-kit/src/node-flags.js';
import { defineConfig } from 'vitest/config';
import { LongestFirstSequencer } from './helpers/longest-first.js';

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
    // The longest files first (helpers/longest-first.ts): on a clean clone vitest has no
    // durations and starts the largest files in bytes first, and in round X's baseline one lane
    // ran alone for 324 of the 979 s.
    sequence: { sequencer: LongestFirstSequencer },
    // Each fork runs file after file with the modules it loaded (orchestrator, worker, express,
    // undici, pino...) kept, rather than a fresh fork per file that loads them again: 17 of the
    // files took 20.5+6.2 s of CPU so, 42.7+14.6 s with a fork each (round X, docs/round-x/x3.md).
    // What a file leaves behind it must clean up anyway (processes: killLeftovers; listeners,
    // servers: its after hooks); the one file with a vi.mock (in-process/scratch-tmpdir.spec.ts)
    // mocks node:fs only for the helper it alone imports.
    isolate: false,
    // One temporary directory for the run, removed at its end: TMPDIR of every fork and process;
    // the CLIs' bundles built once before the tests (test-kit's cliBundle): no test waits for a build.
    globalSetup: ['./helpers/scratch-tmpdir.ts', '../../packages/test-kit/src/prebuild-cli-bundles.ts'],
    poolOptions: {
      // The test files' processes, and so the module hosts their in-process workers start (a
      // host's node flags are its worker's), with V8 11's tier-up delayed as test-kit's
      // TEST_NODE_FLAGS delays it for the CLIs the kit starts: they run for seconds, mostly
      // loading code (docs/round-t/t4.md).
      forks: { execArgv: [...testNodeFlags()] },
    },
  },
});
