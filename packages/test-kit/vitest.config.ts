import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The CLIs' bundles built once before the tests (test-kit's cliBundle): no test waits for a build.
    globalSetup: ['./src/prebuild-cli-bundles.ts'],
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
});
