import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // The test files share their fork's modules (zod's schemas, ts-rest's contract are built once
    // per fork, not once per file): 20.0 -> 9.3 CPU-s for the project (docs/round-x/x4.md). Safe
    // while no spec leaves global state behind: spies and fake timers are restored in `afterEach`.
    isolate: false,
  },
});
