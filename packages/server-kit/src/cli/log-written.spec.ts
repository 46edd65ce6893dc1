import { execFileSync } from 'node:child_process';
import { appendFileSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { destination, pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { logWritten, writeAfterLog } from './log-written.js';

let dir: string | undefined;
afterEach(() => {
  vi.useRealTimers();
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/**
 * Holds every thread of libuv's pool (opening a FIFO for reading waits in a pool thread for a
 * writer), so that an asynchronous file write stays under way until {@link release}: the order
 * decided by the test, not by the pool's timing.
 */
async function holdThreadPool(where: string): Promise<{ release: () => Promise<void> }> {
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const fifos = Array.from({ length: threads }, (_, i) => join(where, `hold-${i}`));
  execFileSync('mkfifo', fifos);
  const opening = fifos.map((fifo) => open(fifo, 'r'));
  return {
    release: async () => {
      for (const fifo of fifos) closeSync(openSync(fifo, 'w'));
      for (const handle of await Promise.all(opening)) await handle.close();
    },
  };
}

describe('writeAfterLog: the CLI’s last line after the asynchronous log', () => {
  it('comes after every line, those of a write under way and those queued behind it too', async () => {
    dir = mkdtempSync(join(tmpdir(), 'mpd-log-'));
    const file = join(dir, 'stderr');
    // As the worker command makes it (run-worker-cli.ts), on a file instead of stderr.
    const log = destination({ dest: file, sync: false, minLength: 4096 });
    await once(log, 'ready');
    const logger = pino({ base: null, timestamp: false }, log);
    const pool = await holdThreadPool(dir);
    // 40 lines of about 130 bytes: the first 4 KiB go to a write (held in the pool), about 1 KiB
    // waits behind it, under minLength.
    for (let i = 0; i < 40; i++) logger.info({ i, pad: 'x'.repeat(80) }, 'line');
    const last = writeAfterLog(log, 'mpd-worker: LAST\n', (text) => appendFileSync(file, text));
    await pool.release();
    await last;
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(41);
    expect(lines.at(-1)).toBe('mpd-worker: LAST');
    expect(lines.slice(0, 40).map((line) => (JSON.parse(line) as { i: number }).i)).toEqual(
      Array.from({ length: 40 }, (_, i) => i),
    );
    log.destroy();
  });

  it('gives up waiting after its timeout (a stderr nobody reads must not keep the worker alive)', async () => {
    // A write under way that never ends (its drain never comes).
    const never = {
      _writing: true,
      flushSync: () => undefined,
      once: () => undefined,
      removeListener: () => undefined,
    };
    const started = performance.now();
    await logWritten(never, 50);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

/** Whether `promise` settled by the time the event loop's current turn (its I/O callbacks) is over. */
async function settledNow(promise: Promise<unknown>): Promise<boolean> {
  return Promise.race([
    promise.then(() => true),
    new Promise<boolean>((resolve) => setImmediate(() => resolve(false))),
  ]);
}

describe('logWritten: no wait when nothing is being written', () => {
  // The orchestrator's destination has minLength 0, where sonic-boom's flush() starts nothing and
  // emits no drain: every exit waited the whole timeout (2 s) before.
  it.each([0, 4096])(
    'an idle destination (minLength %i) resolves at once, its buffered lines written, no timer advanced',
    async (minLength) => {
      dir = mkdtempSync(join(tmpdir(), 'mpd-log-'));
      const file = join(dir, 'stderr');
      const log = destination({ dest: file, sync: false, minLength });
      await once(log, 'ready');
      // Only the timeout's timer is fake: it fires only if the test advances it, which it never does.
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      expect(await settledNow(logWritten(log))).toBe(true);
      // A line written out already (minLength 0), or one waiting under minLength (4096).
      log.write('{"line":1}\n');
      if (minLength === 0) await once(log, 'drain');
      expect(await settledNow(logWritten(log))).toBe(true);
      expect(readFileSync(file, 'utf8')).toBe('{"line":1}\n');
      expect(vi.getTimerCount()).toBe(0);
      log.destroy();
    },
  );

  it('with minLength 0 it still waits for the write under way, and resolves when it ends', async () => {
    dir = mkdtempSync(join(tmpdir(), 'mpd-log-'));
    const file = join(dir, 'stderr');
    const log = destination({ dest: file, sync: false, minLength: 0 });
    await once(log, 'ready');
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const pool = await holdThreadPool(dir);
    log.write('{"line":1}\n'); // under way, held in the pool
    log.write('{"line":2}\n'); // queued behind it
    const written = logWritten(log);
    expect(await settledNow(written)).toBe(false);
    await pool.release();
    await written;
    expect(readFileSync(file, 'utf8')).toBe('{"line":1}\n{"line":2}\n');
    log.destroy();
  });
});
