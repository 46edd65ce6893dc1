/**
 * `@mpd/client`: typed HTTP clients for the mpd orchestrator and worker APIs.
 *
 * ```ts
 * import { createOrchestratorClient } from '@mpd/client';
 *
 * const orchestrator = createOrchestratorClient({ baseUrl: 'http://127.0.0.1:8080' });
 * const health = await orchestrator.health.get();
 * if (health.status === 200) console.log(`${health.body.availableWorkers} workers available`);
 * const workers = await orchestrator.workers.list();
 * ```
 */
export { bearerHeader, createOrchestratorClient, createWorkerClient } from './clients.js';
export type { OrchestratorClient, WorkerClient } from './clients.js';
export type { ClientOptions } from './client-options.js';
export type { CallOptions } from './fetcher.js';
export { ADDRESS_REFUSED } from './checked-connector.js';
export { CallAborter, isTlsFailure, JsonText } from './fetcher.js';
export { MpdClientError } from './errors.js';
export { loadTransport } from './undici.js';
export type { MpdClientErrorCode } from './errors.js';
export { BlobDamagedError, BlobDownloadCutError, VerifyingStream } from './verifying-stream.js';
export { ArtifactClient, ArtifactStoreError, DEFAULT_ARTIFACT_IDLE_TIMEOUT_MS, digestFile } from './artifact-client.js';
export type { ArtifactClientOptions, BlobDigest, DirectTransfer } from './artifact-client.js';
