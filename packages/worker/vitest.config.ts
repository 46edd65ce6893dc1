import { testNodeFlags } from '../test-kit/src/node-flags.js';
import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Files that must not share a process with the others (they run in one of their own, recycled
 * from the others' fork): `console-capture.spec.ts` spies on the `console.log` its capture
 * patches once per process (after an earlier file has patched it, the spy hides the patch, and
 * the spy restored at the file's end unpatches it for later files: `execution.spec.ts`' console
 * tests then capture nothing); `blob-broadcast.spec.ts` mocks `node:net` (`vi.mock`), which every
 * other file's servers use.
 */
// These two share one fork with each other, apart from the rest (console-capture patches the
// console once per process; blob-broadcast mocks node:net). module-artifacts-end.spec resets the
// module registry before each test: it stays with the rest (beside console-capture it broke that
// file's two tests; with the rest, later files load their modules again: slower, not wrong).
const APART = ['src/executor/console-capture.spec.ts', 'src/artifacts/blob-broadcast.spec.ts'];

export default defineConfig({
  test: {
    // The CLIs' bundles built once before the tests (test-kit's cliBundle): no test waits for a build.
    globalSetup: ['../test-kit/src/prebuild-cli-bundles.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // The test files share their fork and its modules (express, ts-rest, zod's schemas, pino, tar
    // loaded once, not once per file: a fork and its imports cost about 2 CPU-s a file, 43 files;
    // docs/round-x/x2.md), each project's files in their own fork. Safe while no file leaves
    // global state behind: each restores its fake timers, environment variables, spies and process
    // listeners (`afterEach`/`finally`) and closes what it started; those that cannot are APART.
    // Set here, not per project: vitest's pool takes it from the root config.
    isolate: false,
    poolOptions: {
      // The test files' processes, and so the module hosts their workers start (a host's node
      // flags are its worker's), with V8 11's tier-up delayed as test-kit's TEST_NODE_FLAGS
      // delays it for the processes the kit starts: they run for seconds, mostly loading code.
      forks: { execArgv: [...testNodeFlags()] },
    },
    projects: [
      {
        extends: true,
        test: {
          name: 'worker',
          include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
          exclude: [...configDefaults.exclude, ...APART],
        },
      },
      { extends: true, test: { name: 'worker-apart', include: APART } },
    ],
  },
});
