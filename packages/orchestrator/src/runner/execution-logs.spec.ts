import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { attemptLogFile } from './execution-logs.js';

describe('attemptLogFile', () => {
  it('is `<logsDir>/<module, percent-encoded>/<attempt>.log` as path.join makes it, for every kind of logsDir', () => {
    const dirs = [
      '/var/mpd/logs',
      '/var/mpd/logs/',
      '/var//mpd/./logs/../logs',
      'logs',
      './logs/',
      '../logs',
      '..',
      '.',
      '',
      '/',
    ];
    const modules = ['build', 'a/../../x', 'ns:tool@1.2-x_y', 'm00042', '..', '.', ''];
    for (const dir of dirs) {
      for (const module of modules) {
        for (const attempt of [1, 12]) {
          expect([dir, module, attemptLogFile(dir, module, attempt)]).toEqual([
            dir,
            module,
            join(dir, encodeURIComponent(module), `${attempt}.log`),
          ]);
        }
      }
    }
  });

  it('keeps a module name that holds `/` or `..` inside logsDir', () => {
    expect(attemptLogFile('/var/mpd/logs', 'a/../../x', 2)).toBe('/var/mpd/logs/a%2F..%2F..%2Fx/2.log');
    // The same logsDir asked for again, then another one: each answer is its own.
    expect(attemptLogFile('/var/mpd/logs', 'build', 1)).toBe('/var/mpd/logs/build/1.log');
    expect(attemptLogFile('/srv/other/', 'build', 1)).toBe('/srv/other/build/1.log');
  });
});
