import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { openSync, readFileSync, readSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { groupAlive, groupMembers, leftoverCheck, signalGroup, stopProcessGroup } from './process-group.js';

/** `script` in bash, in a process group of its own; resolves once bash wrote its first line (the pids it started). */
async function group(script: string): Promise<{ pgid: number; pids: number[] }> {
  const child = spawn('bash', ['-c', script], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  const line = await new Promise<string>((resolve) =>
    child.stdout.once('data', (chunk: Buffer) => resolve(String(chunk))),
  );
  return { pgid: child.pid!, pids: [child.pid!, ...line.trim().split(' ').map(Number)] };
}

describe('process groups', () => {
  it('stops a group whose processes end on SIGTERM at once, grandchildren included, without waiting out the grace', async () => {
    const { pgid, pids } = await group('sleep 30 & echo $!; wait');
    expect(groupMembers(pgid)?.sort()).toEqual(pids.sort());
    const started = performance.now();
    // A grace far longer than any stop on a loaded machine: resolving before half of it means
    // the stop ended when the group did, not when the grace did (no race of a few seconds).
    expect(await stopProcessGroup(pgid, 60_000)).toBe('terminated');
    expect(performance.now() - started).toBeLessThan(30_000);
    expect(groupAlive(pgid)).toBe(false);
  }, 90_000);

  it('sends SIGKILL to what ignores SIGTERM once the grace is over, and resolves when it is gone', async () => {
    const { pgid } = await group('trap "" TERM; sleep 30 & echo $!; wait');
    const started = performance.now();
    expect(await stopProcessGroup(pgid, 1_000)).toBe('killed');
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(groupAlive(pgid)).toBe(false);
    expect(await stopProcessGroup(pgid, 1_000)).toBe('terminated'); // nothing left: at once
  });

  it('never signals group 0, 1 or a negative one (kill(-1) would reach every process)', () => {
    for (const pgid of [-1, 0, 1, Number.NaN]) {
      expect(signalGroup(pgid, 'SIGTERM')).toBe(false);
      expect(groupAlive(pgid)).toBe(false);
    }
  });
});

/** A {@link groupMembers} that counts its calls (each one a walk of `/proc`), failing while `fail` is set. */
function countedMembers() {
  const walks = { count: 0, fail: false };
  const members = (pgid: number): number[] | undefined => {
    walks.count++;
    if (walks.fail) throw new Error('EMFILE: too many open files, scandir /proc');
    return groupMembers(pgid);
  };
  return { walks, members };
}

/** An `ErrnoException` with `code`, as a failed `open`/`read` of `what` throws it. */
const errno = (code: string, what: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`injected ${code}: ${what}`), { code });

/** The namespace's last pid, which leftoverCheck reads before each check. */
const LAST_PID = '/proc/sys/kernel/ns_last_pid';

/** The state letter of `pid` in `/proc` (`Z`: a zombie), or `gone`. */
function stateOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat[stat.lastIndexOf(')') + 2]!;
  } catch {
    return 'gone';
  }
}

describe.runIf(process.platform === 'linux')('groupAlive: when it walks /proc', () => {
  it('not while the group’s leader runs; once it is gone, a walk finds what it left running; none once the group is empty', async () => {
    const { walks, members } = countedMembers();
    // The leader (bash) starts a sleep in its group and exits once told to (a line on its stdin).
    const leader = spawn('bash', ['-c', 'sleep 60 & echo $!; read line'], {
      detached: true,
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    const pgid = leader.pid!;
    try {
      const left = Number(
        await new Promise<string>((resolve) => leader.stdout.once('data', (chunk: Buffer) => resolve(String(chunk)))),
      );
      expect(groupAlive(pgid, members)).toBe(true);
      expect(walks.count).toBe(0);
      // The leader exits (reaped by this process: gone from /proc); its sleep runs on in the group.
      const exited = once(leader, 'exit');
      leader.stdin.end('go\n');
      await exited;
      expect(stateOf(pgid)).toBe('gone');
      expect(groupAlive(pgid, members)).toBe(true);
      expect(walks.count).toBe(1);
      expect(signalGroup(pgid, 'SIGKILL')).toBe(true);
      // Reaped by whoever adopted it (init), or left a zombie (which runs nothing) where no one
      // reaps within 10 s.
      const killedAt = performance.now();
      while (stateOf(left) !== 'gone' && (stateOf(left) !== 'Z' || performance.now() - killedAt < 10_000))
        await new Promise((resolve) => setTimeout(resolve, 10));
      // Reaped: nothing at all is left in the group (kill(-pgid, 0) says so), no walk; a zombie: one.
      const reaped = stateOf(left) === 'gone';
      expect(groupAlive(pgid, members)).toBe(false);
      expect(walks.count).toBe(reaped ? 1 : 2);
    } finally {
      signalGroup(pgid, 'SIGKILL');
    }
  });
});

describe.runIf(process.platform === 'linux')('leftoverCheck: when it walks /proc', () => {
  it('a zombie child that no thread will reap (a worker thread’s child that outlived its thread) starts one walk, not one per check', async () => {
    const { walks, members } = countedMembers();
    const check = leftoverCheck(members);
    check.settle();
    // The thread starts a process and ends; the process, killed, stays a zombie listed as this
    // process's child (the thread's libuv would have reaped it; nothing else waits for it).
    const thread = new Worker(
      `const { spawn } = require('node:child_process');
       const child = spawn('sleep', ['30'], { stdio: 'ignore' });
       require('node:worker_threads').parentPort.postMessage(child.pid);
       setInterval(() => {}, 60_000);`,
      { eval: true },
    );
    const [pid] = (await once(thread, 'message')) as [number];
    try {
      await thread.terminate();
      process.kill(pid, 'SIGKILL');
      await expect.poll(() => stateOf(pid), { timeout: 10_000 }).toBe('Z');
      const before = walks.count;
      for (let i = 0; i < 5; i++) expect(check.count()).toBe(0);
      // One check walks for the new zombie (it may have started a process before it ended: the
      // walk and its second look, since a listed child ended), then none.
      // Before: a walk at every check while the zombie was listed (about 6 ms each).
      expect(walks.count - before).toBe(2);
    } finally {
      if (stateOf(pid) !== 'Z' && stateOf(pid) !== 'gone') process.kill(pid, 'SIGKILL');
    }
  });

  it('a walk that failed says unknown (null: the host is not reused), and is made again at the next check (the fault count taken only after one succeeded)', async () => {
    const { walks, members } = countedMembers();
    const check = leftoverCheck(members);
    check.settle(); // walks when this process had children before
    const settled = walks.count;
    // A child started and reaped: the children's fault count moved, so the next check walks.
    const child = spawn('true', { stdio: 'ignore' });
    await once(child, 'exit');
    walks.fail = true;
    // Before round K: 0, a clean host, reused with whatever its group ran.
    expect(check.count()).toBeNull();
    expect(walks.count - settled).toBe(1);
    walks.fail = false;
    expect(check.count()).toBe(0);
    expect(walks.count - settled).toBe(2);
    // Once one succeeded, no more walks while nothing moves.
    expect(check.count()).toBe(0);
    expect(walks.count - settled).toBe(2);
  });
});

describe.runIf(process.platform === 'linux')("leftoverCheck: every thread's children", () => {
  it('a thread whose children list cannot be opened: skipped when it ended meanwhile (ENOENT), unknown (null: the host is not reused) on any other error, read again at the next check', async () => {
    const inject: { code?: string } = {};
    const check = leftoverCheck(undefined, {
      open(path) {
        // Every check in full (see "no list read while no process was made" below).
        if (path === LAST_PID) throw errno('ENOENT', path);
        // The main thread's list is opened at settle; a failure is injected for threads made later.
        if (inject.code !== undefined && path !== `/proc/${process.pid}/task/${process.pid}/children`)
          throw errno(inject.code, path);
        return openSync(path, 'r');
      },
      read: (fd, buffer) => readSync(fd, buffer, 0, buffer.length, 0),
    });
    check.settle();
    expect(check.count()).toBe(0);
    // A new thread: its list is opened at the next check.
    const thread = new Worker(`setInterval(() => {}, 60_000);`, { eval: true });
    await once(thread, 'online');
    try {
      inject.code = 'ENOENT';
      expect(check.count()).toBe(0);
      inject.code = 'EMFILE';
      // Before the review: 0 (taken as a thread that ended), a clean host.
      expect(check.count()).toBeNull();
      delete inject.code;
      expect(check.count()).toBe(0);
    } finally {
      await thread.terminate();
    }
  });

  it('a thread whose children list cannot be read: read again when it ended (ESRCH, ENOENT), unknown (null: the host is not reused) on any other error, read again at the next check', () => {
    const inject: { code?: string; reads: number } = { reads: 0 };
    const lists = new Set<number>();
    const check = leftoverCheck(undefined, {
      open(path) {
        if (path === LAST_PID) throw errno('ENOENT', path); // every check in full
        const fd = openSync(path, 'r');
        if (path.endsWith('/children')) lists.add(fd);
        return fd;
      },
      read(fd, buffer) {
        if (lists.has(fd)) {
          inject.reads++;
          if (inject.code !== undefined) throw errno(inject.code, `fd ${fd}`);
        }
        return readSync(fd, buffer, 0, buffer.length, 0);
      },
    });
    check.settle();
    expect(check.count()).toBe(0);
    for (const code of ['ESRCH', 'ENOENT']) {
      inject.code = code;
      inject.reads = 0;
      // Taken as a thread that ended: the lists are opened again and read again (failing again: none listed).
      expect(check.count()).toBe(0);
      expect(inject.reads).toBe(2);
    }
    for (const code of ['EIO', 'EMFILE']) {
      inject.code = code;
      // Before: 0, taken as a thread that ended, a clean host reused with whatever runs.
      expect(check.count()).toBeNull();
    }
    delete inject.code;
    expect(check.count()).toBe(0);
  });

  it('a failed open of the main thread’s stat: 0 where there is no /proc (ENOENT), unknown (null) on any other error', () => {
    const failingOpen = (code: string) =>
      leftoverCheck(undefined, {
        open: (path) => {
          if (path.endsWith('/stat')) throw errno(code, path);
          return openSync(path, 'r');
        },
        read: (fd, buffer) => readSync(fd, buffer, 0, buffer.length, 0),
      });
    const noProc = failingOpen('ENOENT');
    noProc.settle();
    expect(noProc.count()).toBe(0);
    for (const code of ['EMFILE', 'EACCES']) {
      const check = failingOpen(code);
      check.settle();
      // Before: 0, a clean host, whatever its module left running.
      expect(check.count()).toBeNull();
    }
  });

  it('finds a child of a worker thread that was asleep in its event loop at settle (like tsx’s loader thread)', async () => {
    const thread = new Worker(
      `const { spawn } = require('node:child_process');
         const { parentPort } = require('node:worker_threads');
         parentPort.on('message', () => parentPort.postMessage(spawn('sleep', ['30'], { stdio: 'ignore', detached: true }).pid));`,
      { eval: true },
    );
    await once(thread, 'online');
    let pid: number | undefined;
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const check = leftoverCheck();
      check.settle();
      expect(check.count()).toBe(0);
      thread.postMessage('spawn');
      [pid] = (await once(thread, 'message')) as [number];
      // Out of this process's group (detached): only the thread's children list finds it.
      expect(check.count()).toBe(1);
    } finally {
      if (pid !== undefined) process.kill(pid, 'SIGKILL');
      await thread.terminate();
    }
  });

  it('finds a child of a thread started after settle', async () => {
    const check = leftoverCheck();
    check.settle();
    const thread = new Worker(
      `const { spawn } = require('node:child_process');
         require('node:worker_threads').parentPort.postMessage(spawn('sleep', ['30'], { stdio: 'ignore', detached: true }).pid);
         setInterval(() => {}, 60_000);`,
      { eval: true },
    );
    const [pid] = (await once(thread, 'message')) as [number];
    try {
      expect(check.count()).toBe(1);
    } finally {
      process.kill(pid, 'SIGKILL');
      await thread.terminate();
    }
  });
});

describe.runIf(process.platform === 'linux')('leftoverCheck: no list read while no process was made', () => {
  /**
   * `/proc` as it is, but the namespace's last pid as `state.lastPid` says (a descriptor of its
   * own), and the reads of the threads' children lists counted; `state.failStat` makes the next
   * read of the main thread's stat fail (EIO); `state.hideLists` makes every children list read
   * as empty (a child whose pid was given out but which its parent does not list yet).
   */
  function withLastPid() {
    const state = { lastPid: '1000\n', listReads: 0, failStat: false, hideLists: false };
    const LAST_PID_FD = -100;
    const lists = new Set<number>();
    let statFd = -1;
    const check = leftoverCheck(undefined, {
      open(path) {
        if (path === LAST_PID) return LAST_PID_FD;
        const fd = openSync(path, 'r');
        if (path.endsWith('/children')) lists.add(fd);
        if (path.endsWith('/stat')) statFd = fd;
        return fd;
      },
      read(fd, buffer) {
        if (fd === LAST_PID_FD) return buffer.write(state.lastPid, 'latin1');
        if (lists.has(fd)) {
          state.listReads++;
          if (state.hideLists) return 0;
        }
        if (fd === statFd && state.failStat) {
          state.failStat = false;
          throw errno('EIO', `fd ${fd}`);
        }
        return readSync(fd, buffer, 0, buffer.length, 0);
      },
    });
    return { check, state };
  }

  it("checks while the last pid stays where two clean checks read it read no thread's list; once it moved, the next two checks read them all, then none again", () => {
    const { check, state } = withLastPid();
    check.settle();
    const settled = state.listReads;
    // settle is the first clean check at 1000, this one the second.
    expect(check.count()).toBe(0);
    const second = state.listReads;
    expect(second).toBeGreaterThan(settled);
    for (let i = 0; i < 5; i++) expect(check.count()).toBe(0);
    // Before: every check read every thread's list (11–13 in a module host).
    expect(state.listReads).toBe(second);
    state.lastPid = '1001\n';
    expect(check.count()).toBe(0);
    const afterMove = state.listReads;
    expect(afterMove).toBeGreaterThan(second);
    expect(check.count()).toBe(0);
    const secondAfterMove = state.listReads;
    expect(secondAfterMove).toBeGreaterThan(afterMove);
    expect(check.count()).toBe(0);
    expect(state.listReads).toBe(secondAfterMove);
  });

  it('a child not yet listed by its parent when settle read the lists: found by the first check', async () => {
    const { check, state } = withLastPid();
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    await once(child, 'spawn');
    try {
      state.hideLists = true;
      check.settle();
      state.hideLists = false;
      expect(check.count()).toBe(1);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });

  it('a check that found a process does not let the next one go without the lists: it finds it again', async () => {
    const { check, state } = withLastPid();
    check.settle();
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    await once(child, 'spawn');
    try {
      state.lastPid = '1001\n'; // as the child's pid moved it
      expect(check.count()).toBe(1);
      // The last pid has not moved since, but the check before found one: made in full.
      expect(check.count()).toBe(1);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });

  it('a child whose pid was given out before its parent listed it, checked in that gap: found by the next check (the shortcut waits for a second clean check at that last pid)', async () => {
    const { check, state } = withLastPid();
    check.settle();
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    await once(child, 'spawn');
    try {
      // The kernel gives the child its pid (the last pid moves) a little before it adds it to
      // its parent's children list: a check in between reads the new last pid and no child.
      state.lastPid = '1001\n';
      state.hideLists = true;
      expect(check.count()).toBe(0);
      state.hideLists = false;
      // Nothing was made since (the last pid is where it was), but that check was the only clean
      // one at 1001: this one is made in full and finds the child (before: 0 without the lists,
      // and at every later check until something else made a process).
      expect(check.count()).toBe(1);
      expect(check.count()).toBe(1);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });

  it('a check that failed (null) does not let the next one go without the lists', () => {
    const { check, state } = withLastPid();
    check.settle();
    state.lastPid = '1001\n';
    state.failStat = true;
    expect(check.count()).toBeNull();
    const reads = state.listReads;
    expect(check.count()).toBe(0);
    expect(state.listReads).toBeGreaterThan(reads);
  });

  it('without the last pid (no such file), every check reads the lists', () => {
    let listReads = 0;
    const lists = new Set<number>();
    const check = leftoverCheck(undefined, {
      open(path) {
        if (path === LAST_PID) throw errno('ENOENT', path);
        const fd = openSync(path, 'r');
        if (path.endsWith('/children')) lists.add(fd);
        return fd;
      },
      read(fd, buffer) {
        if (lists.has(fd)) listReads++;
        return readSync(fd, buffer, 0, buffer.length, 0);
      },
    });
    check.settle();
    for (let i = 0; i < 3; i++) {
      const before = listReads;
      expect(check.count()).toBe(0);
      expect(listReads).toBeGreaterThan(before);
    }
  });

  it('the real last pid: a child started after a check that found nothing is found', async () => {
    const check = leftoverCheck();
    check.settle();
    expect(check.count()).toBe(0);
    expect(check.count()).toBe(0);
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    await once(child, 'spawn');
    try {
      expect(check.count()).toBe(1);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
});
