/**
 * A module host's lease watchdog (`module-host-lease.ts`) in a real child process of its own
 * (`test/fixtures/lease-holder.ts`), its lease channel a pipe from this test: whether a host that
 * takes a module kills its group at once is judged on the latest lease it knows, not on the one
 * its module's message carried, which a large message (a result of tens of MB) reads seconds
 * after the worker sent it, under load, while the worker renewed the lease meanwhile.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { monotonicNow } from './process-group.js';

const HOLDER = fileURLToPath(new URL('../../test/fixtures/lease-holder.ts', import.meta.url));

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
  }
});

/** The holder, in a process group of its own; `lines()` gives its stdout's next line; `exited` its end. */
function startHolder() {
  const child = spawn(process.execPath, ['--import', 'tsx', HOLDER], {
    stdio: ['pipe', 'pipe', 'pipe', 'ignore', 'pipe'],
    detached: true,
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('exit', (_code, signal) => resolve({ signal, stderr })),
  );
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<string | undefined> => (await lines.next()).value as string | undefined;
  return {
    child,
    exited,
    next,
    send: (line: string) => child.stdin!.write(`${line}\n`),
    lease: (endsAt: number) => (child.stdio[4] as Writable).write(`${endsAt}\n`),
  };
}

describe('module host lease watchdog', () => {
  it("a host given a module whose message's lease has passed, the worker having renewed it since, runs it: the latest renewal its watchdog read counts", async () => {
    const holder = startHolder();
    const renewedTo = monotonicNow() + 600_000;
    holder.lease(renewedTo);
    holder.send('wait');
    expect(Number((await holder.next())?.replace('renewed ', ''))).toBeCloseTo(renewedTo, 0);
    // The message was sent with the lease as it was then, ended by the time it is read.
    holder.send(`hold ${monotonicNow() - 1_000}`);
    const answer = await holder.next();
    // Ended instead (its stdout closed): how, for the failure's message.
    expect(answer, answer === undefined ? JSON.stringify(await holder.exited) : '').toBe('held');
  }, 30_000);

  it('a host given a module whose lease has ended, both as its message says and as its watchdog last read it, kills its group at once', async () => {
    const holder = startHolder();
    holder.lease(monotonicNow() - 5_000);
    holder.send('wait');
    expect(await holder.next()).toMatch(/^renewed /);
    holder.send(`hold ${monotonicNow() - 1_000}`);
    const end = await holder.exited;
    expect(end.signal).toBe('SIGKILL');
    expect(end.stderr).toMatch(/its lease ended \(the worker did not renew it in time\): SIGKILL to its process group/);
  }, 30_000);
});
