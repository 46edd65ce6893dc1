import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * `mkdir -p dir`, one level at a time: Node's `mkdir(dir, { recursive: true })` never settles on
 * a file system that answers ENOENT under a parent that exists (`/proc/nope`: measured on Node
 * 20, a thread-pool thread spinning), which hung the orchestrator's start (its artifact store) and would hang the worker's (its cache).
 * @throws the file system's error (`ENOTDIR` when a part is a file, `ENOENT`, `EACCES`, …)
 */
export async function makeDirectory(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let path = resolve(dir); ;) {
    const found = await stat(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (found !== undefined) break;
    missing.push(path);
    const parent = dirname(path);
    if (parent === path) break;
    path = parent;
  }
  for (const path of missing.reverse()) {
    await mkdir(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
  }
}
