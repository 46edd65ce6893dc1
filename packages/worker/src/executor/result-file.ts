/**
 * Which results go by reference, and the file a module host writes such a result to: shared by
 * the worker and its module hosts, so light (no `@mpd/contract` index, no zod): hosts load it.
 */
import { createHash } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The key of a result reference: `{"$mpdRef":{"sha256":…,"size":…}}`. */
export const RESULT_REF_KEY = '$mpdRef';

/**
 * Whether result text `text` goes by reference: over `inlineBytes` in UTF-8 bytes, or itself
 * shaped like a reference (a module returning `{"$mpdRef":…}` gets back, in its dependants,
 * exactly what it returned: it is stored like a large result, never taken for a reference).
 */
export function goesByReference(text: string, inlineBytes: number): boolean {
  if (text.startsWith(`{"${RESULT_REF_KEY}":`)) return true;
  return text.length > inlineBytes || (text.length * 3 > inlineBytes && Buffer.byteLength(text) > inlineBytes);
}

/**
 * The one file a module host may hand the worker as execution `executionId`'s result (`done`
 * with `resultFile`, `host-protocol.ts`): `result-host.<SHA-256 of the executionId, hex>.json` in
 * the host's artifact scratch directory `scratchDir` (an execution id may hold `/` and is up to
 * `LIMITS.identifier.maxLength` long: hashed, it is a name of fixed length). The worker uploads
 * no other path a host names (`fromHostProblem`): not a file elsewhere on its machine, not
 * another execution's.
 */
export function resultFilePath(scratchDir: string, executionId: string): string {
  return join(scratchDir, `result-host.${createHash('sha256').update(executionId).digest('hex')}.json`);
}

/**
 * Writes result text `text` of execution `executionId` to its {@link resultFilePath} (in a module
 * host, on its own main thread): the directory made if missing (the worker's user's only, as the
 * cache the file becomes a blob of), the file new (`wx`: a link or file already there is removed
 * first, never written through), mode 0600.
 * @returns the file's path
 * @throws the file system's error (the module fails with it); a file written in part is removed first
 */
export async function writeResultFile(scratchDir: string, executionId: string, text: string): Promise<string> {
  const path = resultFilePath(scratchDir, executionId);
  await mkdir(scratchDir, { recursive: true, mode: 0o700 });
  await rm(path, { force: true });
  try {
    await writeFile(path, text, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    // A write that failed halfway (a full disk, a file size limit) leaves no partial file behind.
    await rm(path, { force: true }).catch(() => undefined);
    throw error;
  }
  return path;
}
