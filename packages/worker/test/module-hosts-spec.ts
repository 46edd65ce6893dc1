/**
 * What the three specs of modules in module hosts share (`src/executor/hosted-execution.spec.ts`:
 * context, output and crashes; `hosted-stops.spec.ts`: cancels, leases, timeouts, leftover
 * processes, close; `hosted-artifacts.spec.ts`: artifact transfers): real host processes loading
 * `test/fixtures/host-faults.pipeline.ts`, whose modules misbehave in every way a host must survive
 * alone. One file of 54 tests took 192 s on CI's 2 cores; split in three, they are still run one
 * file at a time (vitest's default on 2 cores: running files two at a time was tried in rounds P
 * and R and taken back, docs/round-p/p1.md, docs/round-r/r3.md); the split lets a file run alone.
 *
 * {@link moduleHostsSpec} registers the file's hooks: the fixture loaded once (`beforeAll`), every
 * executor a test made closed after it and the log lines cleared (`afterEach`), the shared
 * executors closed and the file's temporary directory removed (`afterAll`).
 *
 * An executor has 1 slot unless its test asks for more: a pool starts all its hosts at once
 * (about a second of CPU each), and most tests run one module at a time, on one host. A host
 * start is most of what such a test costs: tests that only need some host (not a fresh one, not
 * a lease of their own) take a {@link ModuleHostsSpec.shared} executor, whose host a test retires
 * (a crash, a timeout, a leftover process) is replaced by the pool at once and serves the next
 * test, rather than being started for a test that is over and closed unused (round V).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPipelineFile, type Pipeline } from '@mpd/pipeline';
import { asTsxLoads } from '@mpd/test-kit';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import type { ExecutionOutcome, ExecutionRequest } from '../src/executor/execution.js';
import type { ModuleExecutor, ModuleExecutorOptions } from '../src/executor/module-executor.js';
import type { ModuleOutput } from '../src/executor/module-output.js';
import { hostedExecutor, startedOutcome } from './hosted-executors.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/host-faults.pipeline.ts', import.meta.url));

/** The secret every request's environment carries (`SECRET`), which no output or log may show. */
export const SECRET = 'hunter22-the-secret';

/** What {@link ModuleHostsSpec.recordedOutputs} keeps of an execution's output. */
export interface RecordedOutput {
  log: string[];
  stdout: string[];
  stderr: string[];
  /** Lines written after the output was closed. */
  late: string[];
  ended: boolean;
}

/** The options a {@link ModuleHostsSpec.shared} executor may have: plain values, compared by value. */
export type SharedOptions = Partial<Pick<ModuleExecutorOptions, 'killGraceMs' | 'slots' | 'moduleHeapLimitMb'>>;

/** One spec file's module hosts: see {@link moduleHostsSpec}. */
export interface ModuleHostsSpec {
  /** The file's own working directory (a new temporary one): the executors' and the modules'. */
  dir: string;
  /** Where the fixture's modules write their pids (`MPD_TEST_LEDGER`, inherited by the hosts). */
  ledgerFile: string;
  /** The worker's debug log lines (pino's JSON) of the current test; emptied after each test. */
  logLines: string[];
  /** The fixture pipeline, with the fingerprint tsx gives it (loaded in `beforeAll`). */
  pipeline(): Pipeline;
  /** A hosted executor (1 slot, one host, unless `options` say otherwise), closed after the test. */
  executor(options?: Partial<ModuleExecutorOptions>): ModuleExecutor;
  /**
   * The file's hosted executor for `options` (plain values only: e.g. `killGraceMs`), made at
   * the first call and the same one for every later call with equal options: its hosts outlive
   * the test, and a host a test retired is replaced at once for the next. After each test what
   * still runs on it is cancelled and waited for; closed after the file. Only for tests that
   * neither renew its lease, close it, nor depend on what ran on its host before (a test's first
   * module may find a host that already ran others, and is no fresh start).
   */
  shared(options?: SharedOptions): ModuleExecutor;
  /** An execution request of `moduleTypeName` with a new id, `SECRET` and `PLAIN` in its environment. */
  request(moduleTypeName: string, extra?: Partial<ExecutionRequest>): ExecutionRequest;
  /** `sent` executed on `on`: its outcome (throws when it was not started). */
  start(on: ModuleExecutor, sent: ExecutionRequest): Promise<ExecutionOutcome>;
  /** A new request of `name` executed on `on`: its outcome. */
  run(on: ModuleExecutor, name: string, extra?: Partial<ExecutionRequest>): Promise<ExecutionOutcome>;
  /** The pids a module wrote to the ledger after its name (its host's first), from its last line. */
  ledgerPids(module: string): number[];
  /** The pids the `stubborn` module wrote: its host's, then bash's and sleep's (polls up to 15 s). */
  stubbornPids(): Promise<number[]>;
  /** Each execution's lines by stream as they came, those written after its output closed apart. */
  recordedOutputs(): { outputs: RecordedOutput[]; output: ModuleOutput };
}

/**
 * A spec file's module hosts, its hooks registered: call once at the file's top level.
 * @param fixture the pipeline file the hosts load @default `test/fixtures/host-faults.pipeline.ts`
 */
export function moduleHostsSpec(fixture = FIXTURE): ModuleHostsSpec {
  const dir = mkdtempSync(join(tmpdir(), 'mpd-hosts-'));
  const ledgerFile = join(dir, 'ledger');
  let pipeline: Pipeline | undefined;
  const executors: ModuleExecutor[] = [];
  /** The shared executors, by their options' JSON. */
  const shared = new Map<string, ModuleExecutor>();
  const logLines: string[] = [];
  let nextId = 1;

  beforeAll(async () => {
    // Module hosts inherit the worker's environment: here, the test process's.
    process.env.MPD_TEST_LEDGER = ledgerFile;
    // A pipeline's fingerprint and module digests hash its modules' code as loaded: vitest
    // transforms the file otherwise than tsx (which the CLI and the hosts load it with), so the
    // worker's side here takes those tsx gives, as the CLI would have.
    pipeline = { ...(await loadPipelineFile(fixture)), ...asTsxLoads(fixture) };
    // A tsx process (asTsxLoads) and the fixture's transform: past the 20 s hook
    // timeout beside another copy of the suite at load 25-31.
  }, 60_000);
  afterEach(async () => {
    for (const kept of shared.values()) kept.cancelAll('test over');
    await Promise.all([
      ...executors.splice(0).map((executor) => executor.close('test over')),
      ...[...shared.values()].map((kept) => kept.idle()),
    ]);
    logLines.length = 0;
  });
  afterAll(async () => {
    await Promise.all([...shared.values()].map((kept) => kept.close('file over')));
    shared.clear();
    delete process.env.MPD_TEST_LEDGER;
    rmSync(dir, { recursive: true, force: true });
  });

  const loaded = (): Pipeline => {
    if (!pipeline) throw new Error('the fixture pipeline is loaded in beforeAll');
    return pipeline;
  };
  const executor = (options: Partial<ModuleExecutorOptions> = {}): ModuleExecutor => {
    const created = hostedExecutor(loaded(), dir, (line) => logLines.push(line), options);
    executors.push(created);
    return created;
  };
  const request = (moduleTypeName: string, extra: Partial<ExecutionRequest> = {}): ExecutionRequest => ({
    executionId: `exec-${nextId++}`,
    moduleTypeName,
    params: undefined,
    dependencyResults: {},
    environmentVariables: { SECRET, PLAIN: 'plain-value' },
    secretEnvironmentVariables: ['SECRET'],
    fingerprint: moduleTypeName,
    ...extra,
  });
  const start = (on: ModuleExecutor, sent: ExecutionRequest): Promise<ExecutionOutcome> =>
    startedOutcome(on.execute(sent));
  const ledgerPids = (module: string): number[] => {
    const line = readFileSync(ledgerFile, 'utf8')
      .split('\n')
      .findLast((candidate) => candidate.startsWith(`${module} `));
    return line?.split(' ').slice(1).map(Number) ?? [];
  };

  return {
    dir,
    ledgerFile,
    logLines,
    pipeline: loaded,
    executor,
    shared: (options = {}) => {
      const key = JSON.stringify(Object.entries(options).sort());
      let kept = shared.get(key);
      if (!kept) shared.set(key, (kept = hostedExecutor(loaded(), dir, (line) => logLines.push(line), options)));
      return kept;
    },
    request,
    start,
    run: (on, name, extra = {}) => start(on, request(name, extra)),
    ledgerPids,
    stubbornPids: async () => {
      let pids: number[] = [];
      await expect
        .poll(
          () => {
            const lines = readFileSync(ledgerFile, 'utf8').split('\n');
            const host = lines.findLast((line) => line.startsWith('stubborn '));
            const children = lines.findLast((line) => line.startsWith('pids '));
            pids = [host, children].flatMap((line) => line?.split(' ').slice(1).map(Number) ?? []);
            return pids.length;
          },
          { timeout: 15_000, interval: 50, message: 'the stubborn module to write its pids' },
        )
        .toBe(3);
      return pids;
    },
    recordedOutputs: () => {
      const outputs: RecordedOutput[] = [];
      const output: ModuleOutput = {
        open: () => {
          const lines: RecordedOutput = { log: [], stdout: [], stderr: [], late: [], ended: false };
          outputs.push(lines);
          return {
            write: (stream, text) => {
              if (lines.ended) lines.late.push(text);
              else lines[stream].push(...text.split('\n'));
            },
            end: () => void (lines.ended = true),
          };
        },
      };
      return { outputs, output };
    },
  };
}
