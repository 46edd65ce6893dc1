import { testNodeFlags } from '../test-kit/src/node-flags.js';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    poolOptions: {
      // The test files' processes, and so the module hosts their workers start (a host's node
      // flags are its worker's), with V8 11's tier-up delayed as test-kit's TEST_NODE_FLAGS
      // delays it for the processes the kit starts: they run for seconds, mostly loading code.
      forks: { execArgv: [...testNodeFlags()] },
    },
  },
});
