import { describe, expect, it } from 'vitest';
import { startedWithTsx } from './register-typescript.js';

describe('startedWithTsx', () => {
  it("is true for each way tsx's loaders are registered at node's start (a module host's preload too: round X), false otherwise", () => {
    const preloads = [
      ['--import', 'tsx'],
      ['--import=tsx'],
      [
        '--require',
        '/repo/node_modules/tsx/dist/preflight.cjs',
        '--import',
        'file:///repo/node_modules/tsx/dist/loader.mjs',
      ],
      ['--import', 'file:///repo/packages/cli/tsx-loader.mjs'],
      ['--import', 'file:///repo/packages/worker/module-host-loader.mjs'],
      ['--import', 'file:///usr/lib/node_modules/@mpd/worker/module-host-loader.mjs'],
    ];
    expect(preloads.map((execArgv) => startedWithTsx(execArgv))).toEqual(preloads.map(() => true));
    expect(startedWithTsx([])).toBe(false);
    expect(startedWithTsx(['--max-old-space-size=512', '--import', 'file:///repo/other-loader.mjs'])).toBe(false);
  });
});
