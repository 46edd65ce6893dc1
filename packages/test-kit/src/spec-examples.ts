/**
 * Every example body of the HTTP API spec (shared/spec/http-api.md), verbatim: the contract's
 * test checks that each parses with its schema, and the fuzz test starts from the request bodies.
 */
export const SPEC_EXAMPLES = {
  register: {
    workerNode: {
      id: 'worker-machine1-abc123',
      endpoint: 'http://worker1:9000',
      capabilities: {
        os: 'linux',
        installedTools: ['docker', 'dotnet', 'node'],
        maxParallelModules: 4,
        tags: ['gpu-enabled', 'high-memory'],
      },
      lastHeartbeat: '2025-09-30T10:00:00Z',
      currentLoad: 0,
      status: 'Available',
    },
    timestamp: '2025-09-30T10:00:00Z',
  },
  registerOk: { success: true, workerId: 'worker-machine1-abc123', heartbeatIntervalSeconds: 30 },
  registerBad: { success: false, errorMessage: 'Worker capabilities are invalid' },
  heartbeat: { workerId: 'worker-machine1-abc123', currentLoad: 2, timestamp: '2025-09-30T10:00:30Z' },
  heartbeatCurl: { workerId: 'worker-123', currentLoad: 2 },
  heartbeatOk: { acknowledged: true, shouldDrain: false },
  workers: [
    {
      id: 'worker-machine1-abc123',
      endpoint: 'http://worker1:9000',
      capabilities: { os: 'linux', installedTools: ['docker', 'dotnet'], maxParallelModules: 4, tags: [] },
      lastHeartbeat: '2025-09-30T10:00:30Z',
      currentLoad: 2,
      status: 'Busy',
    },
  ],
  unregisterOk: { success: true },
  orchestratorHealth: { status: 'healthy', availableWorkers: 3, timestamp: '2025-09-30T10:00:00Z' },
  execute: {
    executionId: 'exec-123',
    serializedModule: '{...}',
    moduleTypeName: 'MyApp.Modules.BuildModule, MyApp',
    dependencyResults: { 'MyApp.Modules.RestoreModule, MyApp': '{...}' },
    environmentVariables: { CI: 'true', BUILD_NUMBER: '42' },
    workingDirectory: '/app/workspace',
    timeout: '01:00:00',
    timestamp: '2025-09-30T10:00:00Z',
  },
  executeOk: {
    executionId: 'exec-123',
    success: true,
    serializedResult: '{...}',
    duration: '00:02:30',
    startTime: '2025-09-30T10:00:00Z',
    endTime: '2025-09-30T10:02:30Z',
    workerId: 'worker-machine1-abc123',
  },
  executeFailed: {
    executionId: 'exec-123',
    success: false,
    errorMessage: 'Module execution failed',
    exceptionType: 'System.InvalidOperationException',
    stackTrace: 'at ...',
    duration: '00:00:05',
    startTime: '2025-09-30T10:00:00Z',
    endTime: '2025-09-30T10:00:05Z',
    workerId: 'worker-machine1-abc123',
  },
  cancel: { executionId: 'exec-123', reason: 'Timeout exceeded', timestamp: '2025-09-30T10:05:00Z' },
  cancelOk: { success: true },
  cancelNotFound: { success: false, errorMessage: 'Execution not found' },
  workerHealth: { status: 'healthy', currentLoad: 2, maxLoad: 4, timestamp: '2025-09-30T10:00:00Z' },
};
