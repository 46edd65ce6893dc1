import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const LOG_FORMAT = fileURLToPath(new URL('./log-format.ts', import.meta.url));

describe('logProcessWarnings', () => {
  it("turns the process's warnings into JSON log lines at warn: stderr holds no plain-text warning", () => {
    // A process of its own: the listeners it removes are that process's, not the test runner's.
    const script = `
      import pino from 'pino';
      import { LOG_FORMATTERS, logProcessWarnings } from ${JSON.stringify(LOG_FORMAT)};
      const logger = pino({ formatters: LOG_FORMATTERS }, pino.destination({ dest: 2, sync: true }));
      logProcessWarnings(logger);
      process.emitWarning('The AWS SDK for JavaScript (v3) will no longer support Node.js 20', { type: 'NodeVersionSupportWarning' });
      process.emitWarning('old API', { type: 'DeprecationWarning', code: 'DEP0999' });
    `;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      timeout: 30_000,
    });
    expect(child.status, child.stderr).toBe(0);
    const lines = child.stderr.split('\n').filter(Boolean);
    expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([
      expect.objectContaining({
        level: 'warn',
        warning: 'NodeVersionSupportWarning',
        msg: 'The AWS SDK for JavaScript (v3) will no longer support Node.js 20',
      }),
      expect.objectContaining({ level: 'warn', warning: 'DeprecationWarning', code: 'DEP0999', msg: 'old API' }),
    ]);
  });
});
