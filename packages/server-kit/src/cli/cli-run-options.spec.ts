import { describe, expect, it } from 'vitest';
import { developmentRunOptions } from './cli-run-options.js';

describe('developmentRunOptions (the repository entries behind `pnpm orchestrator` / `pnpm worker`)', () => {
  it("names the command as it was typed in a clone, only for the root's own script of that name", () => {
    const typed = { npm_package_name: 'mpd', npm_lifecycle_event: 'worker', INIT_CWD: '/home/me/project' };
    expect(developmentRunOptions('worker', typed)).toEqual({ cwd: '/home/me/project', name: 'pnpm worker' });
    // Another script of the root, another package's script (a test run), or none: the package's own name.
    expect(developmentRunOptions('orchestrator', typed)).toEqual({ cwd: '/home/me/project' });
    expect(
      developmentRunOptions('worker', {
        ...typed,
        npm_package_name: '@mpd/integration-tests',
        npm_lifecycle_event: 'test',
      }),
    ).toEqual({ cwd: '/home/me/project' });
    expect(developmentRunOptions('worker', {})).toEqual({ cwd: process.cwd() });
  });
});
