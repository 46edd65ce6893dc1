/**
 * Defaults and limits of the wire that code outside the contract also needs. This file imports
 * nothing, so `@mpd/pipeline` can take its default from here (`@mpd/contract/limits`) without
 * loading zod or ts-rest.
 */

/**
 * A module's timeout when none is given, in ms (30 minutes): the worker's for an execute
 * request without `timeout`, the client's for the deadline of such a call, and a pipeline's
 * when its `defaults.timeoutMs` is not set.
 */
export const DEFAULT_MODULE_TIMEOUT_MS = 30 * 60 * 1000;

/** Where each server serves its OpenAPI document (`GET`, no token). */
export const OPENAPI_PATH = '/api/openapi.json';

/** What a masked secret is replaced with in everything that leaves a process (logs, errors, reports). */
export const MASK = '***';
