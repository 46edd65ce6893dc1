import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // The test files share their fork's modules (express, helmet, ts-rest, zod are loaded once
    // per fork, not once per file): 19.7 -> 8.1 CPU-s for the project (docs/round-x/x4.md). Safe
    // while no spec leaves global state behind: fake timers and stubbed variables are restored in
    // `afterEach`, and listen.spec's one `vi.doMock` is undone (`doUnmock`, `resetModules`) in its
    // `finally`.
    isolate: false,
  },
});
