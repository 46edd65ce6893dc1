/**
 * `@mpd/test-kit`: test plumbing shared by the workspace's tests. It runs scripts — the
 * orchestrator and worker CLIs, the demo — as real processes and never imports the code it
 * runs, so any package's tests can use it without depending on the others.
 *
 * ```ts
 * afterAll(killLeftovers);
 * const orchestrator = spawnProcess({ script: cliOf('mpd'), args: ['orchestrator', '--port', '0'], cleanEnv: true });
 * const url = await orchestrator.listeningUrl();
 * // ...
 * expect((await orchestrator.stop('SIGTERM')).code).toBe(0);
 * ```
 *
 * {@link makeTestCertificates} makes a throwaway CA and certificates (with `openssl`) for TLS
 * tests; no key is ever committed. {@link SPEC_EXAMPLES} holds the HTTP API spec's example
 * bodies, verbatim, for the tests that check the contract against them or start from them.
 * {@link instantWorkerClient} is a fake worker client, typed structurally, that answers every
 * module at once, for tests and benchmarks of the orchestrator's runner. {@link startFaultProxy}
 * is a TCP proxy that resets, black-holes or delays connections on demand, for fault tests;
 * {@link ManualClock} a clock that moves only when a test says so. {@link startS3Server} runs an
 * S3-compatible server (s3rver) as a process, recording the requests it gets.
 *
 * {@link TestClock} is real time plus jumps a test makes, for tests about expiry.
 * {@link createNetworkNamespace} puts processes behind a veth pair in a network namespace
 * of their own, to cut them off (iptables) and heal them; it needs root and `iptables`.
 * {@link createNamespaceNetwork} puts hosts on a private network of namespaces, reaching each
 * other by name, as containers on a compose network do; it needs root and `ip`.
 *
 * Each process {@link spawnProcess} starts runs in a process group (and session) of its own, and
 * {@link killLeftovers} kills it with its tree. {@link watchProcessTree} remembers every process
 * of a process's tree while it runs, and tells what of it still runs once it exited (by pid and
 * by process group, from `/proc`). {@link duplicateJsonKeys} finds a key written twice in JSON
 * text (a log line), which `JSON.parse` hides.
 *
 * {@link asTsxLoads} gives a pipeline file's fingerprint and module digests as module hosts load it.
 * {@link UNKNOWN_FLAGS} are two mistyped command lines, {@link unknownFlagAnswers} says what
 * both CLIs answer to them; {@link answeredInProcess} runs a command line a CLI answers before it
 * loads anything (`--help`, a bad setting) in the test's own process.
 *
 * To wait for a condition, use vitest's `expect.poll` or `vi.waitFor`.
 */
export { orchestratorArgs, workerArgs } from './cli-args.js';
export { answeredInProcess, type CliEntry } from './cli-in-process.js';
export { type CliRunEnd, UNKNOWN_FLAGS, unknownFlagAnswers } from './unknown-flags.js';
export { asTsxLoads, tsxLoadsKey, type TsxLoadedDigests } from './tsx-fingerprint.js';
export { SPEC_EXAMPLES } from './spec-examples.js';
export {
  instantWorkerClient,
  type InstantExecuteBody,
  type InstantWorkerClient,
  type InstantWorkerClientOptions,
} from './instant-worker-client.js';
export { duplicateJsonKeys } from './json-keys.js';
export {
  listProcesses,
  processGroupOf,
  processTree,
  type ProcessEntry,
  type ProcessTreeWatch,
  watchProcessTree,
} from './process-tree.js';
export { cliOf, killLeftovers, spawnProcess, TSX_LOADER, type RunningProcess, type SpawnOptions } from './processes.js';
export { TEST_NODE_FLAGS, testNodeFlags } from './node-flags.js';
export { packagesLoadedBy, type LoadedPackages } from './loaded-packages.js';
export { makeTestCertificates, type TestCertificates } from './certificates.js';
export { type Fault, type FaultProxy, type FaultTarget, startFaultProxy } from './fault-proxy.js';
export { ManualClock } from './manual-clock.js';
export {
  MALFORMED_CONTENT_LENGTH_ANSWER,
  malformedContentLength,
  type RawHttpAnswer,
  rawHttpExchange,
} from './raw-http.js';
export { S3_SERVER_CREDENTIALS, type S3Request, type S3Server, startS3Server } from './s3-server.js';
export { TestClock } from './test-clock.js';
export { seededRandom } from './seeded-random.js';
export {
  createNamespaceNetwork,
  createNetworkNamespace,
  destroyNetworkNamespaces,
  networkNamespacesUnavailable,
  type NamespaceNetwork,
  type NetworkHost,
  type NetworkNamespace,
} from './netns.js';
export { keepsOneHiddenClass, sameHiddenClass } from './hidden-class.js';
