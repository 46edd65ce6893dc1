import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * `mkdir -p dir`, one level at a time: Node's `mkdir(dir, { recursive: true })` never settles on
 * a file system that answers ENOENT under a parent that exists (`/proc/nope`: measured on Node
 * 20, a thread-pool thread spinning), which hung the orchestrator's start (its artifact store) and would hang the worker's (its cache).
 * @param mode the mode (before the umask) of `dir` itself when it is made here, as `mkdir -p -m`:
 *   the parents made on the way get the default one, and a `dir` that exists keeps its own
 *   @default the default one (0777 before the umask)
 * @throws the file system's error (`ENOTDIR` when a part is a file, `ENOENT`, `EACCES`, …)
 */
export async function makeDirectory(dir: string, mode?: number): Promise<void> {
  const target = resolve(dir);
  const missing: string[] = [];
  for (let path = target; ;) {
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
    await mkdir(path, path === target && mode !== undefined ? { mode } : {}).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
  }
}
