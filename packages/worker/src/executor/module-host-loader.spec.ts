/**
 * The module host's preload (`module-host-loader.mjs`): when it registers tsx's loaders. A host
 * whose main script is JavaScript (`module-host-main.js`: an installed `@mpd/worker`) registers
 * them itself, after its own modules are loaded and before the pipeline file (round AD: the
 * host's own imports cost less CPU without tsx's hooks); every other process the preload reaches
 * (the sources' `module-host-main.ts`, a node child a module forks) gets them at once, as before.
 * Real node processes, each a main script in a directory of its own beside a TypeScript file.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { HOST_LOADER } from './host-protocol.js';

const WORKER_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * A main script that says whether a `.ts` file can be imported now (tsx registered), then calls
 * the preload's `registerTypeScriptLoaders` (twice: once is once) and says it again.
 */
const MAIN = `
const canImport = async (file) => {
  try {
    await import(file);
    return 'ts';
  } catch (error) {
    return error.code ?? String(error);
  }
};
const before = await canImport('./before.ts');
const loader = await import(${JSON.stringify(HOST_LOADER)});
await loader.registerTypeScriptLoaders();
await loader.registerTypeScriptLoaders();
// Another file: node keeps a failed import's answer for its URL.
console.log(JSON.stringify({ before, after: await canImport('./after.ts') }));
`;

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Runs `node --import module-host-loader.mjs DIR/NAME` with {@link MAIN} as NAME; its JSON line. */
function started(name: string): { before: string; after: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mpd-host-loader-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  for (const file of ['before.ts', 'after.ts']) writeFileSync(join(dir, file), 'export const typed: number = 1;\n');
  writeFileSync(join(dir, name), MAIN);
  const result = spawnSync(process.execPath, ['--import', HOST_LOADER, join(dir, name)], {
    cwd: WORKER_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(result.status, result.stderr).toBe(0);
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { before: string; after: string };
}

describe('module-host-loader.mjs: when tsx is registered', () => {
  it('in a host whose main script is JavaScript, only when the host asks (registerTypeScriptLoaders, once)', () => {
    expect(started('module-host-main.js')).toEqual({ before: 'ERR_UNKNOWN_FILE_EXTENSION', after: 'ts' });
  });

  it('at once in any other process it reaches (a node child a module forks, a host from the sources)', () => {
    expect(started('forked-child.js')).toEqual({ before: 'ts', after: 'ts' });
  });
});
