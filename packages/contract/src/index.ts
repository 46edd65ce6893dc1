/**
 * `@mpd/contract`: the HTTP API of mpd, defined once with ts-rest and zod.
 *
 * ```ts
 * import { initClient } from '@ts-rest/core';
 * import { orchestratorContract } from '@mpd/contract';
 *
 * const api = initClient(orchestratorContract, { baseUrl: 'http://127.0.0.1:8080' });
 * const { status, body } = await api.workers.list();
 * ```
 *
 * Most services should use `@mpd/client`, which wraps these contracts with
 * sensible timeouts.
 */
export {
  artifactsContract,
  executionsContract,
  orchestratorContract,
  workersContract,
  orchestratorHealthContract,
} from './orchestrator.contract.js';
export {
  artifactRefSchema,
  blobParamsSchema,
  blobTransferRequestSchema,
  blobTransferSchema,
  putBlobResponseSchema,
  sha256Schema,
} from './artifacts.schema.js';
export type { ArtifactRef, BlobTransfer, BlobTransferRequest, PutBlobResponse } from './artifacts.schema.js';
export type { OrchestratorContract } from './orchestrator.contract.js';
export { workerContract, executionContract, workerHealthContract } from './worker.contract.js';
export type { WorkerContract } from './worker.contract.js';
export {
  commonResponses,
  durationSchema,
  ERROR_STATUS,
  errorBody,
  errorBodySchema,
  errorResponse,
  errorCodeSchema,
  fieldIssueSchema,
  identifierSchema,
  isoDateTimeSchema,
  timeSpanSchema,
  workerIdSchema,
} from './common.schema.js';
export type { ErrorBody, ErrorBodyOf, ErrorCode, FieldIssue } from './common.schema.js';
export {
  credentialSchema,
  drainWorkerResponseSchema,
  heartbeatCancelSchema,
  heartbeatRequestCheck,
  heartbeatRequestSchema,
  heartbeatResponseSchema,
  endpointOrigin,
  IDEMPOTENCY_KEY_HEADER,
  idempotencyKeySchema,
  registerWorkerHeadersSchema,
  loadedPipelineSchema,
  MAX_HEARTBEAT_CANCELS,
  orchestratorHealthSchema,
  registerWorkerRequestSchema,
  registerWorkerResponseSchema,
  unregisterWorkerResponseSchema,
  WORKER_ENDPOINT_RULE,
  workerCapabilitiesSchema,
  workerEndpointSchema,
  workerListSchema,
  workerNodeRegistrationSchema,
  workerNodeSchema,
  workerStatusSchema,
} from './workers.schema.js';
export type {
  DrainWorkerResponse,
  HeartbeatCancel,
  HeartbeatRequest,
  HeartbeatResponse,
  LoadedPipeline,
  OrchestratorHealth,
  RegisterWorkerRequest,
  RegisterWorkerResponse,
  UnregisterWorkerResponse,
  WorkerCapabilities,
  WorkerNode,
  WorkerNodeRegistration,
  WorkerStatus,
} from './workers.schema.js';
export {
  cancelExecutionRequestSchema,
  cancelExecutionResponseSchema,
  cancelNotFoundSchema,
  executeModuleFailureSchema,
  executeModuleRequestCheck,
  executeModuleRequestSchema,
  executeModuleSuccessSchema,
  failureKindSchema,
  workerHealthSchema,
} from './execution.schema.js';
export type {
  CancelExecutionRequest,
  CancelExecutionResponse,
  CancelNotFound,
  ExecuteModuleFailure,
  ExecuteModuleRequest,
  ExecuteModuleResponse,
  ExecuteModuleSuccess,
  FailureKind,
  WorkerHealth,
} from './execution.schema.js';
export {
  ACCEPT_OUTPUT_HEADER,
  OUTPUT_HEADER,
  OUTPUT_NONE,
  outputAcceptedSchema,
  outputBatchCheck,
  outputBatchSchema,
  outputGapSchema,
  outputLevelSchema,
  outputLineSchema,
  outputStreamSchema,
} from './output.schema.js';
export type { OutputAccepted, OutputBatch, OutputGap, OutputLevel, OutputLine, OutputStream } from './output.schema.js';
export { formatTimeSpan, parseTimeSpan } from './time-span.js';
export { isoTime } from './iso-time.js';
export { redactUrl, redactUrlsIn } from './redact-url.js';
export { retryAfterMs } from './retry-after.js';
export { capFieldIssues, describeFieldIssues, toFieldIssues, truncateText } from './validation.js';
// The OpenAPI documents are `@mpd/contract/openapi` (orchestratorOpenApi, workerOpenApi): not
// exported here, so that a server start does not load their generator (round Z, Z3).
export {
  DEFAULT_MAX_RESULT_BYTES,
  DEFAULT_MAX_ARTIFACT_BYTES,
  DEFAULT_MODULE_TIMEOUT_MS,
  DEFAULT_ORCHESTRATOR_BODY_LIMIT,
  DEFAULT_WORKER_BODY_LIMIT,
  DEFAULT_WORKER_BODY_LIMIT_BYTES,
  describeBytes,
  EXECUTE_ENVELOPE_BYTES,
  executeAnswerLimit,
  formatBytes,
  jsonDepth,
  LIMITS,
  MASK,
  moduleNameCharacters,
  OPENAPI_PATH,
  resultLimitProblem,
} from './limits.js';
export type { ResultLimitProblem } from './limits.js';
