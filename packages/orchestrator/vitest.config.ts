import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The CLIs' bundles built once before the tests (test-kit's cliBundle): no test waits for a build.
    globalSetup: ['../test-kit/src/prebuild-cli-bundles.ts'],
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // The test files share their fork's modules (express, ts-rest, zod's schemas, the AWS SDK are
    // loaded once per fork, not once per file): on 2 cores the project took 42 CPU-s instead of
    // 99 (docs/round-x/x4.md). Safe while no spec leaves global state behind: each restores its
    // fake timers, stubbed variables and process listeners in `afterEach`/`finally`, and none
    // mocks a module (`vi.mock` would reach the files after it).
    isolate: false,
  },
});
