import { describe, expect, it } from 'vitest';
import { fromHostProblem } from './host-message-check.js';
import type { FromHost } from './host-protocol.js';
import { resultFilePath } from './result-file.js';

const thrown = { message: 'boom', type: 'Error', stack: null };
const digest = { sha256: 'a'.repeat(64), size: 3 };
/** One of each message a host sends (`module-host-main.ts`), as JSON carries it. */
const MESSAGES: FromHost[] = [
  { type: 'ready' },
  { type: 'init-failed', message: 'no pipeline' },
  { type: 'logs', executionId: 'e', lines: [] },
  {
    type: 'logs',
    executionId: 'e',
    lines: [
      { level: 'info', message: 'x' },
      { level: 'error', message: '', fields: { a: [1] } },
    ],
  },
  { type: 'artifact-call', executionId: 'e', callId: 1, op: 'put', path: '/p' },
  { type: 'artifact-call', executionId: 'e', callId: 2, op: 'put', path: '/p', digest },
  { type: 'artifact-call', executionId: 'e', callId: 3, op: 'putPacking', path: '/p' },
  { type: 'artifact-call', executionId: 'e', callId: 4, op: 'checkOut', sha256: 'a' },
  { type: 'artifact-call', executionId: 'e', callId: 5, op: 'follow', sha256: 'a' },
  {
    type: 'artifact-call',
    executionId: 'e',
    callId: 6,
    op: 'put',
    path: '/p',
    subject: { module: 'build', artifact: 'dist' },
  },
  { type: 'artifact-abandon', callId: 1 },
  { type: 'artifact-pack-progress', callId: 1, written: 10 },
  { type: 'artifact-pack-ended', callId: 1, digest },
  { type: 'artifact-pack-ended', callId: 1, message: 'failed' },
  { type: 'returned', executionId: 'e', ok: true },
  { type: 'returned', executionId: 'e', ok: false },
  { type: 'stopped', executionId: 'e' },
  { type: 'done', executionId: 'e', leftoverChildren: 0, marked: false, ok: true, resultText: 'null' },
  { type: 'done', executionId: 'e', leftoverChildren: 2, marked: true, ok: false, thrown },
  // The host's leftover check failed: not known (round K), the host is not reused.
  { type: 'done', executionId: 'e', leftoverChildren: null, marked: true, ok: true, resultText: 'null' },
  { type: 'done', executionId: 'e', leftoverChildren: 0, marked: true, ok: false, thrown: { ...thrown, stack: 's' } },
  { type: 'crash', executionId: 'e', what: 'threw', thrown },
  { type: 'crash', executionId: undefined, what: 'threw', thrown },
];

describe('fromHostProblem', () => {
  it.each(MESSAGES.map((message) => [message.type, message] as const))(
    'takes a host message as JSON carries it (%s)',
    (_, message) => {
      expect(fromHostProblem(JSON.parse(JSON.stringify(message)))).toBeUndefined();
    },
  );

  it.each<[string, unknown]>([
    ['null', null],
    ['a number', 1],
    ['an array', [{ type: 'ready' }]],
    ['no type', {}],
    ['a type of no message', { type: 'execute' }],
    ['init-failed without its message', { type: 'init-failed' }],
    ['logs without lines', { type: 'logs', executionId: 'nobody' }],
    ['returned without its executionId', { type: 'returned', ok: true }],
    ['returned without ok', { type: 'returned', executionId: 'e' }],
    ['returned with ok not a boolean', { type: 'returned', executionId: 'e', ok: 'yes' }],
    ['stopped without its executionId', { type: 'stopped' }],
    ['stopped with an executionId not a string', { type: 'stopped', executionId: 7 }],
    ['logs without its executionId', { type: 'logs', lines: [] }],
    ['logs with a line null', { type: 'logs', executionId: 'e', lines: [null] }],
    ['logs with a line of no level', { type: 'logs', executionId: 'e', lines: [{ level: 'fatal', message: 'x' }] }],
    [
      'logs with a line of fields not an object',
      { type: 'logs', executionId: 'e', lines: [{ level: 'info', message: 'x', fields: 'f' }] },
    ],
    ['artifact-call of no op', { type: 'artifact-call', executionId: 'e', callId: 1, op: 'delete' }],
    ['artifact-call put without its path', { type: 'artifact-call', executionId: 'e', callId: 1, op: 'put' }],
    [
      'artifact-call with a subject of no artifact or result',
      { type: 'artifact-call', executionId: 'e', callId: 1, op: 'put', path: '/p', subject: { module: 'build' } },
    ],
    [
      'artifact-call with a subject of no module',
      { type: 'artifact-call', executionId: 'e', callId: 1, op: 'put', path: '/p', subject: { artifact: 'dist' } },
    ],
    // Review of round L: a subject's keys went into the worker's log line as they were.
    [
      'artifact-call with a subject of a key more (level)',
      {
        type: 'artifact-call',
        executionId: 'e',
        callId: 1,
        op: 'put',
        path: '/p',
        subject: { module: 'build', artifact: 'dist', level: 60 },
      },
    ],
    [
      'artifact-call with a subject of both artifact and result',
      {
        type: 'artifact-call',
        executionId: 'e',
        callId: 1,
        op: 'put',
        path: '/p',
        subject: { module: 'build', artifact: 'dist', result: 'build' },
      },
    ],
    [
      'artifact-call with an artifact name longer than an artifact name may be',
      {
        type: 'artifact-call',
        executionId: 'e',
        callId: 1,
        op: 'put',
        path: '/p',
        subject: { module: 'build', artifact: 'a'.repeat(129) },
      },
    ],
    [
      'artifact-call with a module name longer than a module name may be',
      {
        type: 'artifact-call',
        executionId: 'e',
        callId: 1,
        op: 'checkOut',
        sha256: 'a',
        subject: { module: 'm'.repeat(129), result: 'build' },
      },
    ],
    [
      'artifact-call with a callId not a count',
      { type: 'artifact-call', executionId: 'e', callId: '1', op: 'follow', sha256: 'a' },
    ],
    [
      'artifact-pack-ended with a digest of no size',
      { type: 'artifact-pack-ended', callId: 1, digest: { sha256: 'a' } },
    ],
    ['done not ok without its error', { type: 'done', executionId: 'e', ok: false, marked: true, leftoverChildren: 0 }],
    ['done ok without its resultText', { type: 'done', executionId: 'e', ok: true, marked: true, leftoverChildren: 0 }],
    ['done without ok', { type: 'done', executionId: 'e', marked: true, leftoverChildren: 0, resultText: '1' }],
    ['done without leftoverChildren', { type: 'done', executionId: 'e', ok: true, marked: true, resultText: '1' }],
    [
      'done with an error of no message',
      {
        type: 'done',
        executionId: 'e',
        ok: false,
        marked: true,
        leftoverChildren: 0,
        thrown: { type: 'E', stack: null },
      },
    ],
    ['crash without its error', { type: 'crash', executionId: 'e', what: 'threw' }],
  ])('refuses what is no host message, naming why: %s', (_, message) => {
    expect(fromHostProblem(message)).toEqual(expect.any(String));
  });

  describe("the paths a host names for the worker to upload: a done's resultFile, an artifact call's put", () => {
    const scratchDir = '/var/cache/mpd/.scratch';
    const done = (resultFile: unknown, executionId = 'run-1.build.1') => ({
      type: 'done',
      executionId,
      leftoverChildren: 0,
      marked: false,
      ok: true,
      resultFile,
    });
    const notItsFile =
      "a done message whose resultFile is not its execution's result file in the module host's scratch directory";

    it("takes exactly its execution's result file in the host's scratch directory", () => {
      const message = done(resultFilePath(scratchDir, 'run-1.build.1'));
      expect(fromHostProblem(JSON.parse(JSON.stringify(message)), scratchDir)).toBeUndefined();
      // An execution id with a slash and dots still names one file in the directory.
      expect(resultFilePath(scratchDir, '../../etc/x')).toMatch(
        /^\/var\/cache\/mpd\/\.scratch\/result-host\.[0-9a-f]{64}\.json$/,
      );
    });

    it.each<[string, unknown]>([
      ['/etc/shadow', '/etc/shadow'],
      ['a file of the worker beside its scratch directory', '/var/cache/mpd/worker.key'],
      ['a path climbing out of the scratch directory', `${scratchDir}/../worker.key`],
      [
        'a path through the scratch directory to its execution file',
        `${scratchDir}/./${resultFilePath('', 'run-1.build.1')}`,
      ],
      ["another execution's result file", resultFilePath(scratchDir, 'run-1.deploy.1')],
      ["its execution's file in another directory", resultFilePath('/tmp', 'run-1.build.1')],
      ['a relative path', resultFilePath('.scratch', 'run-1.build.1')],
      ['no text', 7],
      ['null', null],
    ])('refuses any other path, naming it: %s', (_, resultFile) => {
      expect(fromHostProblem(done(resultFile), scratchDir)).toBe(notItsFile);
    });

    it("takes an artifact upload (put, putPacking) of a file right in the host's scratch directory only", () => {
      const call = (op: 'put' | 'putPacking', path: string) => ({
        type: 'artifact-call',
        executionId: 'e',
        callId: 1,
        op,
        path,
      });
      for (const op of ['put', 'putPacking'] as const) {
        expect(fromHostProblem(call(op, `${scratchDir}/dist.a1b2c3d4e5f6.tgz`), scratchDir)).toBeUndefined();
        for (const path of [
          '/etc/shadow',
          `${scratchDir}/../worker.key`,
          `${scratchDir}/inner/x.tgz`,
          'dist.tgz',
          `${scratchDir}/`,
        ])
          expect(fromHostProblem(call(op, path), scratchDir), `${op} ${path}`).toBe(
            "an artifact-call to upload a file outside the module host's scratch directory",
          );
      }
    });

    it('refuses one from a host given no scratch directory (a worker without an orchestrator), and one with a resultText too', () => {
      const own = resultFilePath(scratchDir, 'run-1.build.1');
      expect(fromHostProblem(done(own))).toBe(
        'a done message with a resultFile, from a module host given no scratch directory',
      );
      expect(fromHostProblem({ ...done(own), resultText: '1' }, scratchDir)).toBe(
        'a done message (ok) with both a resultText and a resultFile',
      );
    });
  });
});
