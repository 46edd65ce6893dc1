/**
 * A module in a module host whose code has ended while its host still works for it (its result
 * written, its `ctx.artifacts` calls ended: held here by a gate file, `test/fixtures/host-ends.pipeline.ts`)
 * when a cancel arrives: its own outcome is answered, never turned into Cancelled (which made the
 * orchestrator run it again: its side effects twice). Shares `test/module-hosts-spec.ts` with
 * the other `hosted-*.spec.ts` files. The tests whose host is stopped at their end with the
 * default options share one executor (`shared()`): the host started in its place runs the next.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { resultOf, running } from '../../test/hosted-executors.js';
import { within } from '../../test/hostile-blob-server.js';
import { moduleHostsSpec } from '../../test/module-hosts-spec.js';
import { ExecutionCancelledError, ModuleTimeoutError } from '../errors.js';
import { stoppedError } from './hosted-execution.js';
import type { ModuleExecutor } from './module-executor.js';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/host-ends.pipeline.ts', import.meta.url));
const { dir, ledgerFile, logLines, executor, shared, request, start, pipeline } = moduleHostsSpec(FIXTURE);

/**
 * Runs `test` with this process's `setTimeout`/`clearTimeout` on vitest's fake clock, which
 * follows real time (`shouldAdvanceTime`: 20 ms every 20 ms of real time, later under load) and
 * which the test moves on at once with `vi.advanceTimersByTime`: for a wait that is the worker's
 * own timer (a module's timeout, `execution.ts`; a held cancel's grace, `ExecutionStop`), not
 * the host's. Everything else keeps its pace: the hosts are real processes on their own clocks,
 * a group's stop polls `CLOCK_MONOTONIC` (`process-group.ts`: `node:timers/promises`, not faked),
 * `expect.poll` runs on vitest's own timers. Real timers again after `test`, even on failure
 * (fake ones still pending then are dropped: none of the worker's is by then, the execution
 * answered).
 */
async function onFakeClock(test: () => Promise<void>): Promise<void> {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'], shouldAdvanceTime: true });
  try {
    await test();
  } finally {
    vi.useRealTimers();
  }
}

// A test that timed out inside `onFakeClock` restores real timers only when its `test` settles,
// maybe during a later test (the files share their fork): real timers again after each test.
afterEach(() => {
  vi.useRealTimers();
});

/** The side-effect ledger's lines (`held-end <executionId>` per run of the module's code). */
const ledgerLines = (): string[] =>
  existsSync(ledgerFile) ? readFileSync(ledgerFile, 'utf8').split('\n').filter(Boolean) : [];

/**
 * Starts `held-end` on `on` (its end held until `gate` exists) and resolves with its request and
 * outcome once its host is held and the worker has read that the module's code ended: the
 * window in which a cancel used to win.
 */
async function heldAfterItsCode(on: ModuleExecutor, gate: string, fail: boolean, timeoutMs?: number) {
  const sent = request('held-end', { params: { gate, fail }, timeoutMs });
  const outcome = start(on, sent);
  // The host wrote `returned` before it ran the callback that holds it: the worker reads it.
  const hostPid = await heldAndReturned(sent.executionId, 'holding');
  return { sent, outcome, hostPid };
}

/**
 * Starts `forges-returned` on `on` with `params` (a 10-minute timeout) and resolves once its host
 * is held and the worker has read the forged `returned`.
 */
async function forgedReturned(on: ModuleExecutor, params: { ok: boolean; thenReturns: boolean }) {
  const forged = request('forges-returned', { params, timeoutMs: 600_000 });
  const outcome = start(on, forged);
  const hostPid = await heldAndReturned(forged.executionId, 'forged');
  return { forged, outcome, hostPid };
}

/**
 * The pid of the host running `executionId`, once its module wrote `<word> <executionId> <pid>`
 * to the ledger (`holding`; `forged` for `forges-returned`'s line): its host is held (for
 * `crossing-return`, before it says `returned`).
 */
async function holdingBeforeReturned(executionId: string, word: 'holding' | 'forged' = 'holding'): Promise<number> {
  let hostPid = 0;
  await expect
    .poll(
      () => {
        const held = ledgerLines().find((line) => line.startsWith(`${word} ${executionId} `));
        hostPid = Number(held?.split(' ')[2] ?? 0);
        return hostPid > 0;
      },
      { timeout: 30_000, interval: 50 },
    )
    .toBe(true);
  return hostPid;
}

/**
 * The pid of the host running `executionId`, once its module wrote `<word> <executionId> <pid>`
 * to the ledger (it is held) and the worker logged that it read the execution's `returned`.
 */
async function heldAndReturned(executionId: string, word: 'holding' | 'forged'): Promise<number> {
  const hostPid = await holdingBeforeReturned(executionId, word);
  await expect
    .poll(
      () =>
        logLines.some((line) => line.includes(executionId) && line.includes('a cancel no longer replaces its outcome')),
      { timeout: 10_000, interval: 20 },
    )
    .toBe(true);
  return hostPid;
}

describe('a module whose code ended while its host still works for it', () => {
  it("a cancel arriving then: its own outcome is answered (its success, or what it threw), not Cancelled; kept for the orchestrator's collect; its code ran once", async () => {
    writeFileSync(ledgerFile, '');
    // The late cancel's grace (the kill grace) far longer than the host's end once its gate opens.
    const on = executor({ killGraceMs: 30_000 });
    await on.ready();
    const ran: string[] = [];
    for (const fail of [false, true]) {
      const gate = join(dir, `gate-${fail ? 'threw' : 'returned'}`);
      const { sent, outcome } = await heldAfterItsCode(on, gate, fail);
      ran.push(sent.executionId);
      // The cancel route's 200 ("it runs here, stopping"): it does run until its host's end is over.
      expect(on.cancel(sent.executionId, 'the run stops')).toBe(true);
      // Listed as running in the heartbeats meanwhile: the orchestrator waits for it.
      expect(on.executionIds()).toEqual([sent.executionId]);
      writeFileSync(gate, '');
      const answer = await within(outcome, 30_000, 'no answer');
      if (fail) {
        expect(answer).toMatchObject({ status: 500, body: { failureKind: 'Error', errorMessage: 'held-end threw' } });
      } else {
        expect(answer.status, JSON.stringify(answer.body)).toBe(200);
        expect(resultOf(answer)).toEqual({ ran: sent.executionId });
      }
      await on.idle();
      // Named `finished` in the next heartbeat, its outcome kept: the orchestrator's collect (the
      // same request again) joins it and gets the same answer; nothing runs again.
      expect(on.finishedIds()).toContain(sent.executionId);
      const collect = on.execute(sent);
      expect(collect.kind).toBe('joined');
      expect(await (collect as { outcome: Promise<unknown> }).outcome).toEqual(answer);
      expect(ledgerLines().filter((line) => line.startsWith('held-end '))).toEqual(ran.map((id) => `held-end ${id}`));
      expect(
        logLines.some(
          (line) => line.includes(sent.executionId) && line.includes("a cancel came after the module's code had ended"),
        ),
      ).toBe(true);
    }
  });

  it(
    'its timeout still ends a host whose end hangs, the kill grace after it: TimedOut, saying its code had returned; the host stopped',
    () =>
      onFakeClock(async () => {
        const on = shared({ killGraceMs: 30_000 });
        await on.ready();
        // Its timeout and the kill grace after it (the worker's timers, on the fake clock) fire as
        // the test moves the clock on, once the worker read its `returned` (which the answer must
        // name): not a race with the load (until round X a real 12 s, counted from the host's
        // acquisition, was the margin). The end's bound: the timeout + the kill grace (round X, W-A
        // M2: its `done` within that grace would still win, see below).
        const gate = join(dir, 'gate-hung-end');
        const { sent, outcome, hostPid } = await heldAfterItsCode(on, gate, false, 60_000);
        const stopping = (): boolean =>
          logLines.some(
            (line) =>
              line.includes(sent.executionId) && line.includes('stopping the module and every process it started'),
          );
        // The gate opened whatever happens: a held host would hold the shared executor's next stop 30 s.
        try {
          let answered = false;
          void outcome.then(() => (answered = true));
          vi.advanceTimersByTime(60_000 + 20_000); // its timeout, then 2/3 of the grace
          await new Promise((resolve) => setImmediate(resolve));
          // Not stopped before the grace's end (10 s of it left): unanswered, its host held and running.
          expect([answered, stopping(), running(hostPid)]).toEqual([false, false, true]);
          vi.advanceTimersByTime(10_000);
          // Stopped (SIGTERM): let its main thread go, so that it exits at once rather than at the
          // end of a real kill grace. What the worker answers was fixed at the stop.
          await expect.poll(stopping, { timeout: 30_000, interval: 50 }).toBe(true);
          writeFileSync(gate, '');
          const answer = await within(outcome, 30_000, 'no answer');
          expect(answer).toMatchObject({ status: 500, body: { failureKind: 'TimedOut' } });
          expect(answer.body).toHaveProperty(
            'errorMessage',
            expect.stringMatching(
              /^Module 'held-end' timed out after 00:01:00: its code had returned, but its module host did not end it in time/,
            ),
          );
          // Answered once its group is gone.
          expect(running(hostPid)).toBe(false);
        } finally {
          writeFileSync(gate, '');
        }
      }),
    90_000,
  );

  it(
    'its code returned just before its timeout, its host still ending it: its success is answered (not TimedOut: run again) if its `done` comes within the kill grace; its code ran once (round X, W-A M2)',
    () =>
      onFakeClock(async () => {
        writeFileSync(ledgerFile, '');
        const on = shared({ killGraceMs: 30_000 });
        await on.ready();
        const gate = join(dir, 'gate-end-after-timeout');
        try {
          const { sent, outcome, hostPid } = await heldAfterItsCode(on, gate, false, 60_000);
          vi.advanceTimersByTime(60_000); // its timeout, the worker having read its `returned`
          await new Promise((resolve) => setImmediate(resolve));
          writeFileSync(gate, ''); // its host ends it: `done`, well within the grace (30 s on the fake clock)
          const answer = await within(outcome, 30_000, 'no answer');
          expect(answer.status, JSON.stringify(answer.body)).toBe(200);
          expect(resultOf(answer)).toEqual({ ran: sent.executionId });
          expect(ledgerLines().filter((line) => line.startsWith('held-end '))).toEqual([
            `held-end ${sent.executionId}`,
          ]);
          expect(
            logLines.some(
              (line) =>
                line.includes(sent.executionId) && line.includes("its timeout came after the module's code had ended"),
            ),
          ).toBe(true);
          await on.idle();
          expect(running(hostPid)).toBe(true); // kept in the pool
        } finally {
          writeFileSync(gate, '');
        }
      }),
    90_000,
  );

  it("the worker closing while a returned module's host is stuck in its end: the late cancel is answered (Cancelled: run again elsewhere), not the SIGKILL as the module's failure", async () => {
    const on = executor();
    await on.ready();
    const { sent, outcome, hostPid } = await heldAfterItsCode(on, join(dir, 'gate-close'), false, 600_000);
    // The pool stops every host (SIGTERM, SIGKILL after the 1 s kill grace): the held one never sends `done`.
    const closing = on.close('the worker is shutting down');
    const answer = await within(outcome, 30_000, 'no answer');
    await closing;
    // Killed by the pool (the host's end without `done`) or stopped by the late cancel's grace
    // (the same 1 s): either way that cancel's answer.
    expect(answer).toMatchObject({ status: 500, body: { failureKind: 'Cancelled' } });
    expect(answer.body).toHaveProperty(
      'errorMessage',
      expect.stringMatching(/^Execution cancelled: the worker is shutting down/),
    );
    expect(running(hostPid)).toBe(false);
  });

  it("its host killed by its lease watchdog (no `done`) after a late cancel, within that cancel's grace: answered the cancel, not the kill", async () => {
    // A grace far past the lease: only the watchdog's SIGKILL ends the host here.
    const on = executor({ killGraceMs: 60_000 });
    await on.ready();
    on.renewLease(120_000);
    const { sent, outcome, hostPid } = await heldAfterItsCode(on, join(dir, 'gate-lease'), false, 600_000);
    expect(on.cancel(sent.executionId, 'the run stops')).toBe(true);
    on.renewLease(1_500); // not renewed any more: the host kills its group when it ends
    const answer = await within(outcome, 30_000, 'no answer');
    expect(answer).toMatchObject({
      status: 500,
      body: { failureKind: 'Cancelled', errorMessage: 'Execution cancelled: the run stops' },
    });
    expect(running(hostPid)).toBe(false);
  }, 60_000);

  it("a cancel after its code ended waits for its host's end the kill grace at most, then stops it: Cancelled, its host stopped", async () => {
    // The executor's 1 s kill grace is the late cancel's grace; the module's timeout 10 minutes.
    const on = shared();
    await on.ready();
    const held = await heldAfterItsCode(on, join(dir, 'gate-grace'), false, 600_000);
    expect(on.cancel(held.sent.executionId, 'the run stops')).toBe(true);
    // The old code waited for the timeout (10 minutes).
    const answer = await within(held.outcome, 20_000, 'no answer within 20 s of the cancel');
    expect(answer).toMatchObject({ status: 500, body: { failureKind: 'Cancelled' } });
    expect(answer.body).toHaveProperty(
      'errorMessage',
      expect.stringMatching(
        /^Execution cancelled: the run stops: its module host said its code had returned, but did not end it within 1000 ms \(the kill grace\)/,
      ),
    );
    expect(running(held.hostPid)).toBe(false);
  }, 60_000);

  it("a module forging its host's `returned` at its start (fd 3) makes a cancel wait no longer than that grace: Cancelled, its host stopped", async () => {
    const on = shared(); // its 1 s kill grace; the module's timeout 10 minutes
    await on.ready();
    const { forged, outcome, hostPid } = await forgedReturned(on, { ok: true, thenReturns: false });
    expect(on.cancel(forged.executionId, 'the run stops')).toBe(true);
    const forgedAnswer = await within(outcome, 20_000, 'no answer within 20 s of the cancel');
    expect(forgedAnswer).toMatchObject({ status: 500, body: { failureKind: 'Cancelled' } });
    expect(running(hostPid)).toBe(false);
  }, 60_000);

  it('a second `returned` of the same execution (its module forged the first: threw) does not change what the worker took: the first stands', async () => {
    const on = shared(); // its 1 s kill grace
    await on.ready();
    // Forged `ok: false` first, then the host's own `returned` (ok: true) as the module returns.
    const { forged, outcome, hostPid } = await forgedReturned(on, { ok: false, thenReturns: true });
    expect(on.cancel(forged.executionId, 'the run stops')).toBe(true);
    const answer = await within(outcome, 20_000, 'no answer within 20 s of the cancel');
    expect(answer.body).toHaveProperty(
      'errorMessage',
      expect.stringMatching(/^Execution cancelled: the run stops: its module host said its code had thrown,/),
    );
    expect(running(hostPid)).toBe(false);
  }, 60_000);
});

describe("a cancel crossing its host's `returned` on the channel (sent before the worker read it): the host decides (round V, V1)", () => {
  it("the module's code returned before its host read the cancel: its success is answered (not Cancelled), kept for the orchestrator's collect, its host kept; its code ran once", async () => {
    writeFileSync(ledgerFile, '');
    // The grace far longer than the host's end once its gate opens.
    const on = executor({ killGraceMs: 30_000 });
    await on.ready();
    const gate = join(dir, 'gate-crossing');
    const sent = request('crossing-return', { params: { gate } });
    const outcome = start(on, sent);
    const hostPid = await holdingBeforeReturned(sent.executionId);
    // The host has not said `returned`: the worker cannot know the code is returning.
    expect(logLines.some((line) => line.includes('a cancel no longer replaces its outcome'))).toBe(false);
    // The cancel reaches the worker first (200: it runs here); the code returns after, before its
    // host reads the cancel. The old code stopped the host at once: Cancelled, run again.
    expect(on.cancel(sent.executionId, 'the run stops')).toBe(true);
    expect(on.executionIds()).toEqual([sent.executionId]);
    writeFileSync(gate, '');
    const answer = await within(outcome, 30_000, 'no answer');
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(resultOf(answer)).toEqual({ ran: sent.executionId });
    await on.idle();
    expect(on.finishedIds()).toContain(sent.executionId);
    const collect = on.execute(sent);
    expect(collect.kind).toBe('joined');
    expect(await (collect as { outcome: Promise<unknown> }).outcome).toEqual(answer);
    expect(ledgerLines().filter((line) => line.startsWith('crossing-return '))).toEqual([
      `crossing-return ${sent.executionId}`,
    ]);
    expect(
      logLines.some(
        (line) => line.includes(sent.executionId) && line.includes("a cancel came after the module's code had ended"),
      ),
    ).toBe(true);
    // Its host ended the module as usual and stays in the pool (not stopped for the cancel).
    expect(running(hostPid)).toBe(true);
  });

  it(
    'a host that gives no verdict within the kill grace (its main thread held) is stopped all the same, with SIGKILL at once (it had its grace): Cancelled, its host gone',
    () =>
      onFakeClock(async () => {
        writeFileSync(ledgerFile, '');
        // A long kill grace: the verdict's wait is one grace (the held cancel's timer, on the fake
        // clock: moved on by the test); a SIGTERM and a second grace after it (round V's first cut:
        // 2 × the grace, where main took 1 ×; a real wait, the group's stop polls the monotonic
        // clock) shows in the log.
        const on = executor({ killGraceMs: 20_000 }); // the module's timeout 10 minutes
        await on.ready();
        const sent = request('crossing-return', { params: { gate: '/nonexistent/never' }, timeoutMs: 600_000 });
        const outcome = start(on, sent);
        const hostPid = await holdingBeforeReturned(sent.executionId);
        expect(on.cancel(sent.executionId, 'the run stops')).toBe(true);
        const ofIt = (): string[] => logLines.filter((line) => line.includes(sent.executionId));
        const noVerdict = (line: string): boolean =>
          line.includes('gave no verdict on the cancel within the kill grace');
        // Half the grace on: the cancel still waits for the host's verdict (its host held, running).
        vi.advanceTimersByTime(10_000);
        await new Promise((resolve) => setImmediate(resolve));
        expect(ofIt().some(noVerdict)).toBe(false);
        expect(running(hostPid)).toBe(true);
        vi.advanceTimersByTime(10_000);
        const answer = await within(outcome, 60_000, 'no answer within 60 s of the grace');
        expect(answer).toMatchObject({
          status: 500,
          body: { failureKind: 'Cancelled', errorMessage: 'Execution cancelled: the run stops' },
        });
        expect(running(hostPid)).toBe(false);
        expect(ofIt().some(noVerdict)).toBe(true);
        expect(ofIt().filter((line) => line.includes('sent SIGKILL at once'))).toHaveLength(1);
        // Not stopped with SIGTERM and a second grace, SIGKILL only after it.
        expect(ofIt().some((line) => line.includes('still running after the kill grace'))).toBe(false);
      }),
    120_000,
  );
});

describe('a `stopped` its module forged with no cancel asked (on the host channel, fd 3)', () => {
  it("is logged (warn) once and ignored: the host's own `returned` is taken, and a cancel then leaves the module's success standing", async () => {
    writeFileSync(ledgerFile, '');
    const on = shared({ killGraceMs: 30_000 });
    await on.ready();
    const gate = join(dir, 'gate-forged-stopped');
    const sent = request('held-end', { params: { gate, fail: false, forgesStopped: true } });
    const outcome = start(on, sent);
    // The gate opened whatever happens: a held host would hold the shared executor's next stop 30 s.
    try {
      // The host's `returned` read (the old code ignored it after the forged `stopped`).
      await heldAndReturned(sent.executionId, 'holding');
      const forged = (): string[] =>
        logLines.filter(
          (line) => line.includes(sent.executionId) && line.includes("said 'stopped' with no cancel asked"),
        );
      expect(forged()).toHaveLength(1);
      expect(JSON.parse(forged()[0]!)).toMatchObject({ level: 40 });
      expect(on.cancel(sent.executionId, 'the run stops')).toBe(true);
      writeFileSync(gate, '');
      const answer = await within(outcome, 30_000, 'no answer');
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(resultOf(answer)).toEqual({ ran: sent.executionId });
      expect(forged()).toHaveLength(1);
    } finally {
      writeFileSync(gate, '');
    }
  }, 90_000);
});

describe('stoppedError: what a stopped execution whose code had ended is answered', () => {
  it('a cancel stays a cancel (Cancelled: run again), never TimedOut; a timeout stays a timeout; each says the code had ended; before it ended, the reason as it is', () => {
    const cancel = new ExecutionCancelledError('Execution cancelled: the run stops');
    const timeout = new ModuleTimeoutError("Module 'm' timed out after 00:00:05");
    for (const codeOk of [true, false]) {
      const cancelled = stoppedError(cancel, codeOk, 1_000);
      expect(cancelled).toBeInstanceOf(ExecutionCancelledError);
      expect(cancelled).not.toBeInstanceOf(ModuleTimeoutError);
      expect(cancelled.message).toBe(
        `Execution cancelled: the run stops: its module host said its code had ${codeOk ? 'returned' : 'thrown'}, but did not end it within 1000 ms (the kill grace) after the cancel`,
      );
      const timedOut = stoppedError(timeout, codeOk, 1_000);
      expect(timedOut).toBeInstanceOf(ModuleTimeoutError);
      expect(timedOut.message).toMatch(
        new RegExp(
          `^Module 'm' timed out after 00:00:05: its code had ${codeOk ? 'returned' : 'thrown'}, but its module host did not end it in time`,
        ),
      );
    }
    expect(stoppedError(cancel, undefined, 1_000)).toBe(cancel);
    expect(stoppedError(timeout, undefined, 1_000)).toBe(timeout);
  });
});

describe('a `returned` naming another execution than the one its host runs (a module wrote it on the channel)', () => {
  it('is logged (warn) once and taken for nothing: a cancel is still put to the host, which gives no verdict while held, and is Cancelled as such', async () => {
    writeFileSync(ledgerFile, '');
    const on = executor(); // its 1 s kill grace; the module's timeout 10 minutes
    await on.ready();
    const names = 'exec-of-someone-else';
    const forged = request('forges-returned', { params: { ok: true, thenReturns: false, names }, timeoutMs: 600_000 });
    const outcome = start(on, forged);
    const stray = (): string[] =>
      logLines.filter((line) => line.includes("module host said 'returned' for an execution it does not run"));
    // Read (and logged) before the cancel: the old code ignored it without a word.
    await expect.poll(() => stray().length, { timeout: 30_000, interval: 50 }).toBe(1);
    const hostPid = await holdingBeforeReturned(forged.executionId, 'forged');
    expect(on.cancel(forged.executionId, 'the run stops')).toBe(true);
    const answer = await within(outcome, 20_000, 'no answer within 20 s of the cancel');
    // Not "its module host said its code had returned": the stray message set nothing.
    expect(answer).toMatchObject({
      status: 500,
      body: { failureKind: 'Cancelled', errorMessage: 'Execution cancelled: the run stops' },
    });
    expect(running(hostPid)).toBe(false);
    // Both forged lines were read by now (the host is gone): one line in the log.
    expect(stray()).toHaveLength(1);
    expect(JSON.parse(stray()[0]!)).toMatchObject({ level: 40, named: names, running: forged.executionId });
  }, 60_000);
});

describe("its timeout crossing its host's `returned` on the channel: the host decides, as for a cancel (round X, X5)", () => {
  it("the module's code returned before its host read the timeout's stop: its success is answered (not TimedOut: run again), kept; its code ran once, its host kept", async () => {
    writeFileSync(ledgerFile, '');
    // The verdict's wait (the kill grace) far longer than the host's end once its gate opens:
    // the file's executor of that grace, shared (no host started for this test).
    const on = shared({ killGraceMs: 30_000 });
    await on.ready();
    const gate = join(dir, 'gate-timeout-crossing');
    // Counted from the host's acquisition: the host reads `execute` and is held (ms after) well
    // before, even on a loaded 2-core machine; its timeout then fires while it is held.
    const sent = request('crossing-return', { params: { gate }, timeoutMs: 5_000 });
    const outcome = start(on, sent);
    // The gate opened whatever happens: a held host would hold the shared executor's next stop 30 s.
    try {
      const hostPid = await holdingBeforeReturned(sent.executionId);
      // The worker acted on its timeout (put it to the host; the old code stopped the host at
      // once) before the code returns: the two cross.
      await expect
        .poll(
          () =>
            logLines.some(
              (line) =>
                line.includes(sent.executionId) &&
                (line.includes('timed out: its module host decides') ||
                  line.includes('stopping the module and every process it started')),
            ),
          { timeout: 30_000, interval: 50 },
        )
        .toBe(true);
      writeFileSync(gate, '');
      const answer = await within(outcome, 30_000, 'no answer');
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(resultOf(answer)).toEqual({ ran: sent.executionId });
      expect(ledgerLines().filter((line) => line.startsWith('crossing-return '))).toEqual([
        `crossing-return ${sent.executionId}`,
      ]);
      await on.idle();
      expect(on.finishedIds()).toContain(sent.executionId);
      // Its host ended the module as usual and stays in the pool (not stopped for the timeout).
      expect(running(hostPid)).toBe(true);
    } finally {
      writeFileSync(gate, '');
    }
  }, 90_000);
});

describe('its timeout while a cancel put to its host waits for the verdict (round Y, review R2 LOW a)', () => {
  it(
    "stops nothing: the cancel's verdict decides, and the code having returned first, its success is answered (not Cancelled: run again); its code ran once, its host kept",
    () =>
      onFakeClock(async () => {
        writeFileSync(ledgerFile, '');
        // The cancel's grace (30 s, the worker's timer on the fake clock) longer than the module's
        // timeout (20 s), moved on past by the test while the host is held.
        const on = shared({ killGraceMs: 30_000 });
        await on.ready();
        const gate = join(dir, 'gate-timeout-under-cancel');
        const sent = request('crossing-return', { params: { gate }, timeoutMs: 20_000 });
        const outcome = start(on, sent);
        try {
          const hostPid = await holdingBeforeReturned(sent.executionId);
          // The cancel is put to the host, whose main thread is held as its code returns.
          expect(on.cancel(sent.executionId, 'the run stops')).toBe(true);
          vi.advanceTimersByTime(20_000); // its timeout, within the cancel's grace
          // The timeout fired (said so) and changed nothing: the cancel decides.
          expect(logLines.some((line) => line.includes(sent.executionId) && line.includes('the cancel decides'))).toBe(
            true,
          );
          writeFileSync(gate, '');
          const answer = await within(outcome, 30_000, 'no answer');
          expect(answer.status, JSON.stringify(answer.body)).toBe(200);
          expect(resultOf(answer)).toEqual({ ran: sent.executionId });
          await on.idle();
          expect(ledgerLines().filter((line) => line.startsWith('crossing-return '))).toEqual([
            `crossing-return ${sent.executionId}`,
          ]);
          expect(running(hostPid)).toBe(true);
          // Not stopped for its timeout (the old code stopped its host at once: Cancelled, run again).
          expect(logLines.some((line) => line.includes(sent.executionId) && line.includes('stopping the module'))).toBe(
            false,
          );
        } finally {
          writeFileSync(gate, '');
        }
      }),
    90_000,
  );

  it(
    "its timeout firing while a cancel waits for the verdict of a host that gives none: the cancel's kill grace bounds the wait, not a new one; Cancelled (never TimedOut), SIGKILL at once (round Y, review R2 LOW a; z2's test)",
    () =>
      onFakeClock(async () => {
        writeFileSync(ledgerFile, '');
        const on = shared({ killGraceMs: 30_000 });
        await on.ready();
        // Its gate never opened: its host never says `returned`, nor reads the cancel.
        const sent = request('crossing-return', { params: { gate: '/nonexistent/never' }, timeoutMs: 25_000 });
        const outcome = start(on, sent);
        const ofIt = (): string[] => logLines.filter((line) => line.includes(sent.executionId));
        const stopping = (): boolean =>
          ofIt().some((line) => line.includes('stopping the module and every process it started'));
        const hostPid = await holdingBeforeReturned(sent.executionId);
        expect(on.cancel(sent.executionId, 'the run stops')).toBe(true);
        let answered = false;
        void outcome.then(() => (answered = true));
        vi.advanceTimersByTime(25_000); // its timeout
        await new Promise((resolve) => setImmediate(resolve));
        // The old code stopped the host at the timeout (SIGTERM, then SIGKILL after a real 30 s).
        expect([answered, stopping(), running(hostPid)]).toEqual([false, false, true]);
        vi.advanceTimersByTime(4_900); // not yet the cancel's grace's end
        await new Promise((resolve) => setImmediate(resolve));
        expect([answered, stopping(), running(hostPid)]).toEqual([false, false, true]);
        vi.advanceTimersByTime(100); // the cancel's grace over: 30 s after the cancel
        const answer = await within(outcome, 60_000, 'no answer within 60 s of the grace');
        expect(answer).toMatchObject({
          status: 500,
          body: { failureKind: 'Cancelled', errorMessage: 'Execution cancelled: the run stops' },
        });
        expect(running(hostPid)).toBe(false);
        expect(ofIt().some((line) => line.includes('gave no verdict on the cancel within the kill grace'))).toBe(true);
        expect(ofIt().filter((line) => line.includes('sent SIGKILL at once'))).toHaveLength(1);
      }),
    120_000,
  );
});

describe('its timeout put to a host whose main thread is blocked (no verdict within the kill grace; round X, W-A M1)', () => {
  it(
    "is stopped with SIGTERM, SIGKILL only after the kill grace: the module's processes get their cleanup time; TimedOut, its host gone",
    () =>
      onFakeClock(async () => {
        writeFileSync(ledgerFile, '');
        // The file's 30 s-grace executor, shared. The timeout and the verdict's wait (the held
        // timeout's grace) are the worker's timers, on the fake clock: moved on by the test. The
        // group's stop is real: its shell cleans up in 0.3 s, then opens the gate, which lets the
        // host's main thread go, so that its SIGTERM handler ends it (no SIGKILL: no real 30 s).
        const on = shared({ killGraceMs: 30_000 });
        await on.ready();
        const gate = join(dir, 'gate-trapped-child');
        const sent = request('trapped-child', { params: { gate }, timeoutMs: 60_000 });
        const outcome = start(on, sent);
        const ofIt = (): string[] => logLines.filter((line) => line.includes(sent.executionId));
        try {
          // Its shell set its trap (it ledgers `holding` after): the host's main thread is blocked.
          const hostPid = await holdingBeforeReturned(sent.executionId);
          vi.advanceTimersByTime(60_000);
          expect(ofIt().some((line) => line.includes('timed out: its module host decides'))).toBe(true);
          vi.advanceTimersByTime(30_000); // the grace: no verdict, the host stopped
          const answer = await within(outcome, 60_000, 'no answer within 60 s of the grace');
          expect(answer).toMatchObject({ status: 500, body: { failureKind: 'TimedOut' } });
          expect(ofIt().some((line) => line.includes('gave no verdict on the timeout within the kill grace'))).toBe(
            true,
          );
          // SIGTERM first: the shell ran its trap to its end (before round X's fix, SIGKILL came
          // with the SIGTERM: no `cleaned-up`).
          expect(
            ledgerLines().filter((line) => line.endsWith(` ${sent.executionId}`) && !line.startsWith('holding ')),
          ).toEqual([`got-SIGTERM ${sent.executionId}`, `cleaned-up ${sent.executionId}`]);
          // No SIGKILL: the group ended within the grace. (A clean-clone run once saw it alive 30 s
          // after the SIGTERM: the fixture's `sleep 600 &` had been forked as the SIGTERM came.)
          expect(ofIt().some((line) => line.includes('SIGKILL'))).toBe(false);
          expect(running(hostPid)).toBe(false);
        } finally {
          writeFileSync(gate, '');
        }
      }),
    90_000,
  );
});

/**
 * The bytes the module hosts of this process wrote so far (the `wchar` of each one's
 * `/proc/<pid>/io`): every message of a host to the worker is a write.
 */
function hostsWritten(): number {
  let bytes = 0;
  for (const tid of readdirSync('/proc/self/task'))
    for (const pid of readFileSync(`/proc/self/task/${tid}/children`, 'latin1').split(' ').filter(Boolean)) {
      try {
        if (!readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('module-host-main')) continue;
        bytes += Number(/^wchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'latin1'))?.[1] ?? 0);
      } catch {
        // gone meanwhile
      }
    }
  return bytes;
}

describe('a host failing before the module runs while a cancel waits for its verdict (round V, W1 LOW; round X, X5)', () => {
  it("the cancel crossing the host's failure (its `done` with no `returned`: the code never ran) is answered (Cancelled: run again), not that failure", async () => {
    const on = shared(); // its 1 s kill grace
    await on.ready();
    const loaded = pipeline();
    const digestOf = loaded.moduleDigest;
    // The worker loaded another 'held-end' than its hosts did (the file changed since): a host
    // refuses it before it runs (`checkedModule`), at once.
    loaded.moduleDigest = (name) => (name === 'held-end' ? 'sha256:the-worker-loaded-another' : digestOf(name));
    try {
      const sent = request('held-end', { params: { gate: '/nonexistent/never' }, timeoutMs: 600_000 });
      const before = hostsWritten();
      const outcome = start(on, sent); // its `execute` is on the host channel now (written at once)
      // This thread (the worker's event loop) held until the host answered: it wrote, then wrote
      // nothing for 200 ms (what it writes before its answer: tsx's cache files, if any), 10 s at
      // most. The worker reads that answer only after the cancel below, which the host reads
      // after it answered. Had the host not answered by then, it reads the cancel first and says
      // `stopped`: Cancelled all the same (the old code too: it failed only when they crossed).
      const cell = new Int32Array(new SharedArrayBuffer(4));
      const until = Date.now() + 10_000;
      for (let written = before, quietSince = Date.now(); Date.now() < until;) {
        Atomics.wait(cell, 0, 0, 10);
        const now = hostsWritten();
        if (now !== written) [written, quietSince] = [now, Date.now()];
        else if (written !== before && Date.now() - quietSince >= 200) break;
      }
      expect(on.cancel(sent.executionId, 'the run stops')).toBe(true);
      const answer = await within(outcome, 20_000, 'no answer');
      // The old code answered the host's failure: "Module 'held-end' could not run: Pipeline file … changed".
      expect(answer).toMatchObject({
        status: 500,
        body: { failureKind: 'Cancelled', errorMessage: 'Execution cancelled: the run stops' },
      });
    } finally {
      loaded.moduleDigest = digestOf;
    }
  });

  it("its timeout crossing the host's failure there is not the answer: the host's failure is, with its message (round Y, review R2 LOW b: TimedOut, run again)", () =>
    onFakeClock(async () => {
      const on = shared(); // its 1 s kill grace
      await on.ready();
      const loaded = pipeline();
      const digestOf = loaded.moduleDigest;
      loaded.moduleDigest = (name) => (name === 'held-end' ? 'sha256:the-worker-loaded-another' : digestOf(name));
      try {
        const sent = request('held-end', { params: { gate: '/nonexistent/never' }, timeoutMs: 60_000 });
        const before = hostsWritten();
        const outcome = start(on, sent);
        // As above: the worker's event loop held until the host answered (its failure, at once).
        const cell = new Int32Array(new SharedArrayBuffer(4));
        const until = Date.now() + 10_000;
        for (let written = before, quietSince = Date.now(); Date.now() < until;) {
          Atomics.wait(cell, 0, 0, 10);
          const now = hostsWritten();
          if (now !== written) [written, quietSince] = [now, Date.now()];
          else if (written !== before && Date.now() - quietSince >= 200) break;
        }
        // Its timeout fires before the worker reads that answer: put to the host, held.
        vi.advanceTimersByTime(60_000);
        expect(logLines.some((line) => line.includes(sent.executionId) && line.includes('timed out'))).toBe(true);
        const answer = await within(outcome, 20_000, 'no answer');
        expect(answer.status).toBe(500);
        expect(answer.body).not.toMatchObject({ failureKind: 'TimedOut' });
        expect((answer.body as { errorMessage: string }).errorMessage).toContain('Pipeline file');
      } finally {
        loaded.moduleDigest = digestOf;
      }
    }));
});
