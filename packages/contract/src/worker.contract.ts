import { initContract } from '@ts-rest/core';
import { commonResponses, errorBodySchema } from './common.schema.js';
import {
  cancelExecutionRequestSchema,
  cancelExecutionResponseSchema,
  cancelNotFoundSchema,
  executeModuleFailureSchema,
  executeModuleRequestSchema,
  executeModuleSuccessSchema,
  workerHealthSchema,
} from './execution.schema.js';

const c = initContract();

/** `/api/execution`: running and cancelling modules. */
export const executionContract = c.router({
  execute: {
    method: 'POST',
    path: '/api/execution/execute',
    summary:
      'Run a module and answer when it ends: 200 on success, 500 with the failure. Sending the same request (same executionId, module and inputs) again joins the running execution, or gets its kept outcome, instead of starting another; the same executionId with another module or other inputs answers 409 ExecutionIdConflict.',
    body: executeModuleRequestSchema,
    responses: {
      200: executeModuleSuccessSchema,
      404: errorBodySchema,
      /** `ExecutionIdConflict`: the executionId is known with another module or other inputs (never joined). */
      409: errorBodySchema,
      /** Every slot is taken: try again later or on another worker (`Retry-After` says when). */
      429: errorBodySchema,
      500: executeModuleFailureSchema.or(errorBodySchema),
      /**
       * `WorkerDraining`: the worker is draining or shutting down and takes no new modules;
       * `WorkerNotReady` (with `Retry-After`): it takes calls only with its credential and its
       * first registration has not completed.
       */
      503: errorBodySchema,
    },
  },
  cancel: {
    method: 'POST',
    path: '/api/execution/cancel',
    summary:
      'Cancel a running execution; its execute call then answers success: false. 404 ExecutionNotFound when none runs under that executionId; with finished: true when it ran and finished here, its outcome kept for the same execute request sent again.',
    body: cancelExecutionRequestSchema,
    responses: {
      200: cancelExecutionResponseSchema,
      /** `ExecutionNotFound`; `finished: true`: it finished here, its outcome kept (see `cancelNotFoundSchema`). */
      404: cancelNotFoundSchema,
      /** `WorkerNotReady` (with `Retry-After`): as for execute. */
      503: errorBodySchema,
    },
  },
});

export const workerHealthContract = c.router({
  get: {
    method: 'GET',
    path: '/api/health',
    summary: 'Worker health and load',
    responses: { 200: workerHealthSchema },
  },
});

/** The worker's HTTP API. */
export const workerContract = c.router(
  { execution: executionContract, health: workerHealthContract },
  { strictStatusCodes: true, commonResponses },
);
export type WorkerContract = typeof workerContract;
