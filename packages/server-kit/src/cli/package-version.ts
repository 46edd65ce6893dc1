import { readFileSync } from 'node:fs';

/**
 * The `version` of the `package.json` at `url` (for a CLI's `--version`), e.g.
 * `packageVersion(new URL('../../package.json', import.meta.url))` from `src/cli/` (and from
 * `dist/cli/`, the same depth once built).
 * @throws Node's error when the file cannot be read; an Error when it has no string `version`
 */
export function packageVersion(url: URL): string {
  const { version } = JSON.parse(readFileSync(url, 'utf8')) as { version?: unknown };
  if (typeof version !== 'string') throw new Error(`${url.pathname} has no "version"`);
  return version;
}
