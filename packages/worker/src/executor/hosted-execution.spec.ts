/**
 * Modules run in module hosts (`isolation: 'process'`), their context, output and crashes: real
 * host processes loading `test/fixtures/host-faults.pipeline.ts`, whose modules misbehave in every
 * way a host must survive alone. Cancels, leases, timeouts and leftover processes are in
 * `hosted-stops.spec.ts`, artifact transfers in `hosted-artifacts.spec.ts` (one file took 192 s
 * on CI; vitest still runs the three one at a time); what they share in `test/module-hosts-spec.ts`.
 * The tests that need only some host (no output of their own, the default options) share one
 * executor (`shared()`): a crash test's replacement host runs the next test's modules.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_MAX_RESULT_BYTES } from '@mpd/contract';
import { describe, expect, it } from 'vitest';
import { resultOf, running } from '../../test/hosted-executors.js';
import { moduleHostsSpec, type RecordedOutput, SECRET } from '../../test/module-hosts-spec.js';
import type { ModuleOutput } from './module-output.js';
import { channelLineLimit } from './host-channel.js';

const { dir, ledgerFile, logLines, executor, shared, request, start, run, ledgerPids, recordedOutputs } =
  moduleHostsSpec();

/**
 * `recorded`'s output as a worker busy elsewhere reads it: the host's stdout at about 16 MB/s (a
 * busy loop per write), counting its numbered lines (8 digits, from 0) and whether they came in
 * order; only the first execution's when `firstOnly` (the others are recorded as they come).
 */
function slowNumberedStdout(
  recorded: { outputs: RecordedOutput[]; output: ModuleOutput },
  { firstOnly }: { firstOnly: boolean },
): { output: ModuleOutput; seen: { lines: number; inOrder: boolean } } {
  const seen = { lines: 0, inOrder: true };
  const output: ModuleOutput = {
    open: (executionId) => {
      const writer = recorded.output.open(executionId);
      if (firstOnly && recorded.outputs.length > 1) return writer;
      return {
        ...writer,
        write: (stream, text, level) => {
          if (stream !== 'stdout') return writer.write(stream, text, level);
          for (const line of text.split('\n'))
            if (line && Number(line.slice(0, 8)) !== seen.lines++) seen.inOrder = false;
          const until = performance.now() + text.length / 16_384;
          while (performance.now() < until);
        },
      };
    },
  };
  return { output, seen };
}

describe('modules in module hosts', () => {
  it('runs a module in a host process with its context, masks what it logs or prints, and reuses the host', async () => {
    const on = shared();
    const first = resultOf(await run(on, 'echo', { params: { n: 1 }, dependencyResults: { before: { ok: true } } }));
    expect(first).toEqual({
      pid: expect.any(Number),
      params: { n: 1 },
      results: { before: { ok: true } },
      env: 'plain-value',
    });
    expect(first.pid).not.toBe(process.pid);
    // A host that ended its module cleanly takes the next one (once its slot is free: one slot).
    await on.idle();
    expect(resultOf(await run(on, 'echo')).pid).toBe(first.pid);
    const logs = logLines.join('');
    expect(logs).toContain('echo logging the secret');
    expect(logs).toMatch(/"stream":"stdout".*echo printing the secret \*\*\*/);
    expect(logs).not.toContain(SECRET);
  });

  it('a dependency result and a result near the result limit cross the host channel whole both ways, multi-byte characters and newlines included', async () => {
    // The host holds the result as its value, as its JSON and as the `done` line (the tests' 64 MiB is too little).
    const on = executor({ moduleHeapLimitMb: 512 });
    // UTF-8 sequences of 1 to 4 bytes and characters JSON escapes, so that reads cut them.
    const unit = 'a\né€😀"\\\u0001';
    const big = unit.repeat(
      Math.floor((DEFAULT_MAX_RESULT_BYTES - 1024) / (Buffer.byteLength(JSON.stringify(unit)) - 2)),
    );
    const outcome = await run(on, 'echo', { dependencyResults: { big } });
    const echoed = resultOf(outcome);
    expect((echoed.results as { big: string }).big === big).toBe(true);
    if (outcome.status === 200)
      expect(Buffer.byteLength(outcome.body.serializedResult)).toBeGreaterThan(DEFAULT_MAX_RESULT_BYTES - 1024);
    // Work, not a wait: about 3.5 s of CPU more than a module's round trip (the 16 MiB written,
    // read and checked on each side; round V), which took 27-33 s at load 30 on 2 cores against
    // the 30 s this had. The timeout only bounds a hang; nothing here races a clock.
  }, 120_000);

  it('ctx.logger lines logged in a loop that never yields all reach the output, in order, with the fields they were logged with', async () => {
    const written: string[] = [];
    const output: ModuleOutput = {
      open: () => ({ write: (_stream, text, level) => void written.push(`${level} ${text}`), end: () => undefined }),
    };
    const on = executor({ output });
    expect(resultOf(await run(on, 'loud-logger'))).toBe('logged');
    await expect.poll(() => written.length).toBe(1_200);
    expect(written).toEqual(
      Array.from({ length: 1_200 }, (_, index) =>
        index % 100 === 0 ? `warn line ${index} {"index":${index}}` : `info line ${index}`,
      ),
    );
  });

  it("a module's line that looks like the host's end-of-output mark (without its nonce) is text of its own output, and its output goes on", async () => {
    const written = new Map<string, string[]>();
    const output: ModuleOutput = {
      open: (executionId) => {
        const lines: string[] = [];
        written.set(executionId, lines);
        return { write: (_stream, text) => void lines.push(...text.split('\n')), end: () => undefined };
      },
    };
    const on = executor({ output });
    expect(resultOf(await run(on, 'fake-mark'))).toBe('printed');
    await on.idle();
    expect(resultOf(await run(on, 'echo')).pid).toEqual(expect.any(Number));
    const [fake, echoed] = [...written.values()];
    await expect
      .poll(() => fake)
      .toEqual([
        'before',
        expect.stringMatching(/^\u0000mpd-output-end [^ ]+$/),
        expect.stringMatching(/^\u0000mpd-output-end 0{32} [^ ]+$/),
        'after',
      ]);
    // The next module on the host has its own lines, none of the first's.
    await expect.poll(() => echoed?.some((line) => line.startsWith('echo printing'))).toBe(true);
    expect(echoed).not.toContain('after');
  });

  it('a command writing faster than the worker reads waits, though its module reads it too: its host holds at most about 4 MiB of its output, and every line arrives, in order, to both', async () => {
    let lines = 0;
    let inOrder = true;
    let stderr = '';
    const output: ModuleOutput = {
      open: () => ({
        write: (stream, text) => {
          if (stream === 'stderr') stderr += text;
          if (stream !== 'stdout') return;
          for (const line of text.split('\n')) if (Number(line.slice(0, 8)) !== lines++) inOrder = false;
          // A worker busy elsewhere: it reads the host's stdout at about 16 MB/s.
          const until = performance.now() + text.length / 16_384;
          while (performance.now() < until);
        },
        end: () => undefined,
      }),
    };
    const on = executor({ output });
    // 200,000 lines of 128 bytes: 25.6 MB, which the host took in while the worker caught up
    // (its RSS grew by about 14 MB per 100,000 lines of 100) before its buffer was bounded (4
    // MiB), and again, 21 MB, while the module's own reads of the command's stream resumed it.
    const result = resultOf(await run(on, 'loud-command', { params: { lines: 200_000 } }));
    expect(result.readBytes).toBe(200_000 * 128);
    await expect.poll(() => lines, { timeout: 30_000 }).toBe(200_000);
    expect(inOrder).toBe(true);
    // The bound (4 MiB) plus what the host reads while it waits for a drain: 6.5 MB seen on a
    // loaded machine.
    expect(result.heldMb).toBeLessThan(12);
    // One 'drain' listener however many writes wait (one per write passed Node's 10, and its
    // warning landed in the module's own output).
    expect(result.drainListeners).toBeLessThanOrEqual(2);
    expect(stderr).not.toContain('MaxListenersExceededWarning');
  }, 60_000);

  /** Keeps the worker's event loop busy until `module` wrote its ledger line, and 300 ms more. */
  function blockUntilLedger(module: string): void {
    const until = Date.now() + 15_000;
    const wrote = (): boolean => existsSync(ledgerFile) && ledgerPids(module).length > 0;
    while (!wrote() && Date.now() < until);
    const settle = Date.now() + 300;
    while (Date.now() < settle);
  }

  const RAW_WRITTEN = {
    log: ['logged first'],
    stdout: ['raw stdout 1', 'raw stdout 2', 'inherited stdout', 'no newline at the end'],
    stderr: ['raw stderr', 'inherited stderr'],
    late: [],
    ended: true,
  };

  it("bytes written past the host's streams (fs.writeSync on 1 and 2, a command with inherited stdio, a last line without a newline) are all the module's before its output closes, though the worker reads its answer before its pipes", async () => {
    const { outputs, output } = recordedOutputs();
    const on = executor({ output, slots: 1 });
    await on.ready();
    const written = run(on, 'raw-writer');
    // The execute message goes out; then the worker is busy while the module runs. Once free, it
    // reads the host channel (fd 3; readable since the module's log line) before its pipes: the
    // module's answer comes before the bytes it wrote straight to them.
    await new Promise((resolve) => setImmediate(resolve));
    blockUntilLedger('raw-writer');
    expect(resultOf(await written)).toBe('written');
    expect(outputs[0]).toEqual(RAW_WRITTEN);
    // The next module on the host has its own lines, none of the first's.
    await on.idle();
    expect(resultOf(await run(on, 'echo')).pid).toBe(ledgerPids('raw-writer')[0]);
    await expect.poll(() => outputs[1]?.ended).toBe(true);
    expect(outputs[1]).toEqual({
      log: ['echo logging the secret {"secret":"***"}'],
      stdout: ['echo printing the secret ***'],
      stderr: [],
      late: [],
      ended: true,
    });
  });

  /** Why the `big-buffer` test cannot run here: `SO_SNDBUFFORCE` needs root (CAP_NET_ADMIN), the module python3. */
  const BIG_BUFFER_SKIP =
    process.getuid?.() !== 0
      ? 'not root: SO_SNDBUFFORCE needs CAP_NET_ADMIN'
      : spawnSync('python3', ['--version']).error
        ? 'no python3 to set SO_SNDBUFFORCE'
        : undefined;

  it.skipIf(BIG_BUFFER_SKIP !== undefined)(
    `a host's pipe holding more than libuv reads in one poll (2 MiB) when its unmarked done comes: every line is the module's before its output closes, none late, none the next module's${BIG_BUFFER_SKIP ? ` (skipped: ${BIG_BUFFER_SKIP})` : ''}`,
    async () => {
      const { outputs, output } = recordedOutputs();
      const on = executor({ output, slots: 1 });
      await on.ready();
      const written = run(on, 'big-buffer');
      // As above: the worker reads `done` with the 3 MB still in the pipe, whose buffer holds them.
      await new Promise((resolve) => setImmediate(resolve));
      blockUntilLedger('big-buffer');
      const result = resultOf(await written) as { lines: number; written: number; sendBuffer: number };
      expect(result.sendBuffer).toBeGreaterThan(result.written);
      expect(result.written).toBe(result.lines * 100);
      const numbered = (lines: string[]) => lines.filter((line) => /^\d{8}x/.test(line));
      // Counted when the execution is answered (its output closes with the answer).
      expect(outputs[0]!.ended).toBe(true);
      const atAnswer = numbered(outputs[0]!.stdout);
      expect(atAnswer.length).toBe(result.lines);
      expect(atAnswer.at(-1)).toBe(`${String(result.lines - 1).padStart(8, '0')}${'x'.repeat(91)}`);
      // Nothing after: not late, not in the next module's output on the same host.
      await on.idle();
      expect(resultOf(await run(on, 'echo')).pid).toBe(ledgerPids('big-buffer')[0]);
      await expect.poll(() => outputs[1]?.ended).toBe(true);
      expect(outputs[0]!.late).toEqual([]);
      expect(numbered(outputs[1]!.stdout)).toEqual([]);
    },
    30_000,
  );

  it('a ctx.logger line logged after its module ended is not lost: the worker logs it at its level, masked, marked late, naming its module and execution, whether its host is idle or runs another module by then; one of an execution more than 32 modules back is told of without its text, naming its module', async () => {
    const { outputs, output } = recordedOutputs();
    const on = executor({ output, slots: 1 });
    const trigger = join(dir, 'late-trigger');
    const lateLines = () =>
      logLines
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((line) => /late line/.test(String(line.msg)));
    // The host idle when the line comes.
    const idle = request('late-logger', { params: { trigger } });
    expect(resultOf(await start(on, idle))).toBe('returned');
    await expect.poll(() => outputs[0]?.ended).toBe(true);
    writeFileSync(trigger, '');
    await expect.poll(() => lateLines().length, { timeout: 15_000 }).toBe(1);
    // The host running another module when the line comes (dropped before: not the host's module).
    const busy = request('late-logger', { params: { trigger } });
    expect(resultOf(await start(on, busy))).toBe('returned');
    await expect.poll(() => outputs[1]?.ended).toBe(true);
    await on.idle();
    expect(resultOf(await run(on, 'pulls-trigger', { params: { trigger } }))).toBe('heard');
    await expect.poll(() => lateLines().length, { timeout: 15_000 }).toBe(2);
    expect(lateLines()).toEqual(
      [idle, busy].map(({ executionId }) =>
        expect.objectContaining({
          level: 30,
          late: 'ended',
          module: 'late-logger',
          executionId,
          secret: '***',
          msg: 'ctx.logger.info after its module ended (not in its output): late line ***',
        }),
      ),
    );
    expect(logLines.join('')).not.toContain(SECRET);
    // In neither module's output: theirs were closed, and the next module's is its own.
    expect(outputs.map(({ log, late }) => ({ log, late }))).toEqual([
      { log: [], late: [] },
      { log: [], late: [] },
      { log: ['pulled'], late: [] },
    ]);
    // An execution more than 32 modules back on its host: its secrets are no longer known, so the
    // worker says that a line came, without its text, at the line's level, naming its module.
    const gone = request('late-logger', { params: { trigger } });
    expect(resultOf(await start(on, gone))).toBe('returned');
    for (let index = 0; index < 32; index++) {
      await on.idle();
      resultOf(await run(on, 'echo'));
    }
    await on.idle();
    expect(resultOf(await run(on, 'pulls-trigger', { params: { trigger } }))).toBe('heard');
    const notShown = () => logLines.filter((line) => line.includes('not shown'));
    await expect.poll(() => notShown().length, { timeout: 15_000 }).toBe(1);
    expect(JSON.parse(notShown()[0]!)).toMatchObject({
      level: 30,
      executionId: gone.executionId,
      module: 'late-logger',
      lines: 1,
    });
    expect(lateLines()).toHaveLength(2);
    // One whose code goes on logging keeps its own, however many modules run on its host meanwhile.
    const chatty = request('late-logger', { params: { trigger, repeat: true } });
    expect(resultOf(await start(on, chatty))).toBe('returned');
    for (let index = 0; index < 48; index++) {
      await on.idle();
      resultOf(await run(on, index % 16 === 15 ? 'pulls-trigger' : 'echo', { params: { trigger } }));
    }
    await expect.poll(() => lateLines().length, { timeout: 15_000 }).toBe(5);
    expect(lateLines().slice(2)).toEqual(
      Array.from({ length: 3 }, () => expect.objectContaining({ executionId: chatty.executionId, secret: '***' })),
    );
    expect(notShown()).toHaveLength(1);
    expect(logLines.join('')).not.toContain(SECRET);
  }, 60_000);

  it("the next module on a host runs once the output of the one before left the host: its bytes written straight to the pipes are its own, and the first module's every line is the first's, in order", async () => {
    const recorded = recordedOutputs();
    const { outputs } = recorded;
    const slow = slowNumberedStdout(recorded, { firstOnly: true });
    const on = executor({ output: slow.output, slots: 1 });
    await on.ready();
    // 4 MiB written at once: the host's stdout blocks on its full pipe (see module-host-main.ts),
    // so the write returns once the worker read all but the pipe's last part: nothing queued in
    // the host when the module returns (it was most of it while those pipes were non-blocking).
    const first = resultOf(await run(on, 'queued', { params: { mb: 4 } }));
    expect(first.queuedMb).toBe(0);
    await on.idle(); // its slot free
    expect(resultOf(await run(on, 'raw-writer'))).toBe('written');
    await expect.poll(() => outputs[0]?.ended && outputs[1]?.ended, { timeout: 30_000 }).toBe(true);
    expect(slow.seen).toEqual({ lines: first.lines, inOrder: true });
    expect(outputs[0]!.late).toEqual([]);
    expect(outputs[1]).toEqual(RAW_WRITTEN);
  }, 60_000);

  it('fs.writeSync(1, …) in a module writes all it is given, as in plain node, though the worker reads slower than the module writes', async () => {
    const recorded = recordedOutputs();
    const { outputs } = recorded;
    const slow = slowNumberedStdout(recorded, { firstOnly: false });
    const on = executor({ output: slow.output, slots: 1 });
    await on.ready();
    // Not a pipe a host's module may find full and non-blocking (EAGAIN, or a part written).
    const result = resultOf(await run(on, 'raw-flood', { params: { mb: 8 } }));
    expect(result).toEqual({ lines: 8 * Math.floor((1024 * 1024) / 100) });
    await expect.poll(() => outputs[0]?.ended, { timeout: 30_000 }).toBe(true);
    expect(slow.seen).toEqual({ lines: result.lines, inOrder: true });
  }, 60_000);

  it('ctx.exec runs a command in the working directory with ctx.env, and can take a non-zero exit', async () => {
    expect(resultOf(await run(shared(), 'exec'))).toEqual({
      stdout: `plain-value in ${dir}`,
      exitCode: 3,
      stderr: 'oops',
    });
  });

  it.each([
    [
      'unhandled-rejection',
      /^Module 'unhandled-rejection' crashed its module host: it left a promise rejection unhandled: Error: unhandled, with \*\*\*$/,
    ],
    [
      'trailing-rejection',
      /^Module 'trailing-rejection' crashed its module host: it left a promise rejection unhandled: Error: trailing, with \*\*\*$/,
    ],
    [
      'uncaught-exception',
      /^Module 'uncaught-exception' crashed its module host: it threw an uncaught exception: Error: uncaught, with \*\*\*$/,
    ],
    [
      'null-prototype',
      /^Module threw a non-Error value: <ref \*1> \[Object: null prototype\] \{ self: \[Circular \*1\], secret: '\*\*\*' \}$/,
    ],
    [
      'exit',
      /^Module 'exit' ended abnormally: its module host exited with code 3 while it ran \(process\.exit\(\) in the module\?\)$/,
    ],
    [
      'channel-garbage',
      /^Module 'channel-garbage' crashed its module host: it wrote a line that is not a message on its channel with the worker \(fd 3\): .*JSON/,
    ],
    [
      'dies-mid-message',
      /^Module 'dies-mid-message' ended abnormally: its module host was killed by SIGKILL while it ran/,
    ],
    [
      'out-of-memory',
      /^Module 'out-of-memory' ended abnormally: it ran out of memory \(JavaScript heap out of memory; the heap limit is 64 MiB, --module-heap-limit\)/,
    ],
  ])(
    '%s: the module fails alone, with a masked message naming what happened; the next one runs',
    async (name, message) => {
      const on = shared();
      const before = resultOf(await run(on, 'echo')).pid;
      await on.idle();
      const outcome = await run(on, name);
      expect(outcome.status).toBe(500);
      if (outcome.status !== 500) return;
      expect(outcome.body.errorMessage).toMatch(message);
      expect(outcome.body.failureKind).toBe('Error');
      expect(JSON.stringify(outcome.body)).not.toContain(SECRET);
      expect(logLines.join('')).not.toContain(SECRET);
      await expect.poll(() => on.load).toBe(0);
      // The worker is untouched, and a host takes the next module (a fresh one where the host died).
      const after = resultOf(await run(on, 'echo')).pid;
      if (name !== 'null-prototype') expect(running(before as number)).toBe(false);
      expect(after).not.toBe(process.pid);
    },
    30_000,
  );

  it.each([
    ['null', /it wrote a line that is not a message on its channel with the worker \(fd 3\): null is not a message$/],
    ['logs-no-lines', /: a logs message without its lines$/],
    ['logs-null-line', /: a logs message with a line that is not a log line$/],
    ['done-no-error', /: a done message \(not ok\) without its thrown error$/],
  ])(
    'a line of JSON that is no message of a host (%s) written by a module on fd 3: its execution fails as a crash, the host is retired, the worker goes on',
    async (line, message) => {
      const on = shared();
      const before = resultOf(await run(on, 'echo')).pid as number;
      await on.idle();
      const outcome = await run(on, 'channel-wrong-shape', { params: { line } });
      expect(outcome.status).toBe(500);
      if (outcome.status !== 500) return;
      expect(outcome.body.errorMessage).toMatch(/^Module 'channel-wrong-shape' crashed its module host: /);
      expect(outcome.body.errorMessage).toMatch(message);
      await expect.poll(() => on.load).toBe(0);
      expect(running(before)).toBe(false);
      expect(resultOf(await run(on, 'echo')).pid).not.toBe(before);
    },
    30_000,
  );

  it('a host whose leftover check could not tell (done with leftoverChildren null) is not reused: the worker stops its group and says why', async () => {
    const on = shared();
    const before = resultOf(await run(on, 'echo')).pid as number;
    await on.idle();
    const outcome = await run(on, 'channel-wrong-shape', { params: { line: 'done-leftovers-unknown' } });
    // The answer is the done's; the module itself still waited: stopped with its host.
    expect(resultOf(outcome)).toBe('unknown');
    await expect.poll(() => on.load).toBe(0);
    expect(logLines.join('')).toMatch(/could not tell whether it left processes running/);
    // Before round K a host said 0 on such an error and was reused (and a done with null was refused as malformed).
    await expect.poll(() => running(before), { timeout: 20_000 }).toBe(false);
    expect(resultOf(await run(on, 'echo')).pid).not.toBe(before);
  }, 30_000);

  it("a module writing more than the channel's line limit on fd 3 without a newline: its execution fails as a crash naming the limit, the worker holds none of it and goes on", async () => {
    const on = shared();
    const limit = channelLineLimit(DEFAULT_MAX_RESULT_BYTES);
    const outcome = await run(on, 'channel-no-newline', { params: { mb: limit / 2 ** 20 + 4 } });
    expect(outcome.status).toBe(500);
    if (outcome.status !== 500) return;
    expect(outcome.body.errorMessage).toMatch(
      new RegExp(
        `^Module 'channel-no-newline' crashed its module host: .*: a line longer than ${limit} bytes \\(the channel's line limit\\)$`,
      ),
    );
    await expect.poll(() => on.load).toBe(0);
    expect(resultOf(await run(on, 'echo')).pid).not.toBe(process.pid);
  }, 60_000);
});
