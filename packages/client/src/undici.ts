import type * as Undici from 'undici';

let loading: Promise<typeof Undici> | undefined;
let loaded: typeof Undici | undefined;

/**
 * undici, loaded by the first call rather than when `@mpd/client` is imported: a worker or
 * orchestrator start makes no call before it listens, and undici's index loads ~110 files
 * (~0.2 CPU-s on the round Z machine; round Z, Z3). The first call of a process pays it once. A
 * package missing fails that first call with node's own `Cannot find package 'undici'`.
 */
export function loadUndici(): Promise<typeof Undici> {
  return (loading ??= import('undici').then((module) => (loaded = module)));
}

/**
 * Loads the client's HTTP transport (undici) now rather than at the first call. For a process
 * that is about to call and is about to register module loader hooks first (the `mpd` command
 * registers tsx for a pipeline file): loaded after such hooks, each of undici's ~110 files goes
 * through them, about 50 ms more CPU a start (137–140 ms loaded before tsx, 162–201 after;
 * docs/round-ac/lead.md). Idempotent; calls made meanwhile share the same load.
 * @throws (the promise rejects) node's `Cannot find package 'undici'` when it is not installed
 */
export async function loadTransport(): Promise<void> {
  await loadUndici();
}

/**
 * undici once {@link loadUndici} resolved: for what runs inside an agent made from it (the
 * checked connector's `buildConnector`), which cannot run before.
 * @throws Error if undici is not loaded yet (a defect of ours: nothing connects before a call)
 */
export function loadedUndici(): typeof Undici {
  if (loaded === undefined) throw new Error('undici is used before loadUndici() resolved');
  return loaded;
}
