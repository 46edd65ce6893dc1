import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Writes a file the CLIs keep between runs (the orchestrator's timings, the worker's
 * credential) whole or not at all: into a temporary file beside it, renamed over it, so a
 * crash mid-write never leaves half a file. Missing directories are made. With `private`, the
 * file is readable by its owner only (0600, whatever the umask) and new directories are 0700.
 */
export async function writeStateFile(
  file: string,
  content: string,
  options: { private?: boolean } = {},
): Promise<void> {
  const owned = options.private === true;
  await mkdir(dirname(file), { recursive: true, ...(owned ? { mode: 0o700 } : {}) });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, content, owned ? { mode: 0o600 } : {});
  if (owned) await chmod(temporary, 0o600);
  await rename(temporary, file);
}
