import type { ChildProcess } from 'node:child_process';
import { fstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { CommandFailedError, moduleCommands } from './module-commands.js';
import { ByteLineSplitter, LineSplitter, splitLines } from './module-output.js';

const scope = (signal = new AbortController().signal) => ({
  signal,
  workingDirectory: tmpdir(),
  env: { RUN_VALUE: 'from ctx.env' },
});

describe('ctx.exec', () => {
  it("runs in the working directory with the worker's environment and ctx.env, option env on top", async () => {
    const { exec } = moduleCommands(scope());
    const result = await exec('sh', ['-c', 'echo "$RUN_VALUE|$EXTRA|$(pwd)|${PATH:+has PATH}"; echo err >&2'], {
      env: { EXTRA: 'extra' },
    });
    expect(result).toEqual({ stdout: `from ctx.env|extra|${tmpdir()}|has PATH\n`, stderr: 'err\n', exitCode: 0 });
    expect((await exec('cat', [], { input: 'piped in' })).stdout).toBe('piped in');
  });

  it('rejects a non-zero exit with a CommandFailedError that keeps the output and ends with the stderr', async () => {
    const { exec } = moduleCommands(scope());
    const failure = await exec('sh', ['-c', 'echo out; echo "it broke" >&2; exit 4']).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(CommandFailedError);
    expect(failure).toMatchObject({
      name: 'CommandFailedError',
      message: "Command 'sh' exited with code 4: it broke",
      exitCode: 4,
      signal: null,
      stdout: 'out\n',
      stderr: 'it broke\n',
    });
    await expect(exec('sh', ['-c', 'exit 4'], { allowNonZeroExit: true })).resolves.toMatchObject({ exitCode: 4 });
    await expect(exec('mpd-no-such-command')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('stops a command that writes more than maxBufferBytes', async () => {
    const { exec } = moduleCommands(scope());
    await expect(exec('sh', ['-c', 'yes | head -c 100000'], { maxBufferBytes: 1_000 })).rejects.toThrow(
      "Command 'sh' wrote more than 1000 bytes to stdout (maxBufferBytes) and was stopped",
    );
  });

  it("rejects with the signal's reason once it aborts, and sends the command SIGTERM", async () => {
    const controller = new AbortController();
    const { exec, spawn } = moduleCommands(scope(controller.signal));
    const running = exec('sleep', ['30']);
    const child = spawn('sleep', ['30']);
    child.on('error', () => undefined);
    const closed = new Promise((resolve) => child.on('close', (_code, signal) => resolve(signal)));
    const reason = new Error('cancelled');
    controller.abort(reason);
    await expect(running).rejects.toBe(reason);
    expect(await closed).toBe('SIGTERM');
    await expect(exec('true')).rejects.toBe(reason);
  });
});

describe('the output of commands (ctx.exec, ctx.spawn)', () => {
  const withOutput = () => {
    const lines: string[] = [];
    const { exec, spawn } = moduleCommands({
      ...scope(),
      onOutput: (stream, block) => {
        expect(block.at(-1)).toBe(0x0a);
        for (const line of splitLines(block.toString('utf8', 0, block.length - 1))) lines.push(`${stream}: ${line}`);
      },
    });
    return { exec, spawn, lines };
  };

  it('exec: each line as it comes, stream kept, and the whole text in the result as before', async () => {
    const { exec, lines } = withOutput();
    const result = await exec(process.execPath, [
      '-e',
      "process.stdout.write('one\\r\\ntwo\\nthree'); process.stderr.write('oops\\n')",
    ]);
    expect(result.stdout).toBe('one\r\ntwo\nthree');
    expect(lines.filter((line) => line.startsWith('stdout'))).toEqual(['stdout: one', 'stdout: two', 'stdout: three']);
    expect(lines.filter((line) => line.startsWith('stderr'))).toEqual(['stderr: oops']);
  });

  it('spawn: the module still reads the piped stream whole, even from a later turn, and each line is output', async () => {
    const { spawn, lines } = withOutput();
    const child = spawn(process.execPath, ['-e', "console.log('a'); console.log('b')"]);
    await new Promise((resolve) => child.on('exit', resolve));
    // Read only once the command exited: nothing was lost meanwhile.
    let read = '';
    for await (const chunk of child.stdout!) read += String(chunk);
    expect(read).toBe('a\nb\n');
    expect(lines).toEqual(['stdout: a', 'stdout: b']);
  });
});

describe("ctx.spawn with inherited stdio: the module does not read the stream, the command's lines are output all the same", () => {
  /** What `onOutput` got, as the bytes of each stream, and the blocks' count. */
  const capturing = (ownOutputCaptured?: boolean, secrets?: readonly Buffer[]) => {
    const got = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    const { spawn } = moduleCommands({
      ...scope(),
      onOutput: (stream, block) => void got[stream].push(Buffer.from(block)),
      secrets,
      ownOutputCaptured,
    });
    return { spawn, got };
  };
  const closed = (child: ChildProcess) =>
    new Promise<number | null>((resolve, reject) => child.on('close', resolve).on('error', reject));
  const LINES = "for (let i = 0; i < 5000; i++) console.log('line ' + i); console.error('on stderr')";
  const expected = Array.from({ length: 5000 }, (_, index) => `line ${index}\n`).join('');

  it.each([
    ["'inherit'", 'inherit'],
    ["['ignore', 'inherit', 'inherit']", ['ignore', 'inherit', 'inherit']],
    ['[0, 1, 2]', [0, 1, 2]],
    ['[0, process.stdout, process.stderr]', [0, process.stdout, process.stderr]],
  ] as const)(
    "where this process's own output is not captured (the worker with --isolation none), %s: every line to the module's output, in order, stream kept; the module gets no stream",
    async (_, stdio) => {
      const { spawn, got } = capturing();
      const child = spawn(process.execPath, ['-e', LINES], { stdio: stdio as never });
      expect(child.stdout).toBeNull();
      expect(child.stderr).toBeNull();
      // Every line passed on before the module sees 'close'.
      expect(await closed(child)).toBe(0);
      expect(Buffer.concat(got.stdout).toString()).toBe(expected);
      expect(Buffer.concat(got.stderr).toString()).toBe('on stderr\n');
    },
  );

  it('a stream not inherited keeps its own way: a pipe the module reads (and which is output), or nothing', async () => {
    const { spawn, got } = capturing();
    const child = spawn(process.execPath, ['-e', LINES], { stdio: ['ignore', 'pipe', 'ignore'] });
    let read = '';
    child.stdout!.on('data', (chunk: Buffer) => (read += String(chunk)));
    expect(await closed(child)).toBe(0);
    expect(read).toBe(expected);
    expect(Buffer.concat(got.stdout).toString()).toBe(expected);
    expect(got.stderr).toEqual([]);
  });

  it('an over-long line is given in pieces never cut inside a secret value, as a piped stream is', async () => {
    const secret = 'hunter2-inherited-secret';
    const { spawn, got } = capturing(false, [Buffer.from(secret)]);
    const child = spawn(
      process.execPath,
      ['-e', `process.stdout.write('w'.repeat(16380) + ${JSON.stringify(secret)} + 'w'.repeat(53600) + ' tail\\n')`],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    expect(await closed(child)).toBe(0);
    const line = `${'w'.repeat(16_380)}${secret}${'w'.repeat(53_600)} tail`;
    // Pieces of at most maxLineLength, each given as a line (ended with \n): together the line.
    const pieces = Buffer.concat(got.stdout).toString().split('\n').slice(0, -1);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join('') === line).toBe(true);
    // Each piece alone holds the secret whole or none of it.
    expect(pieces.filter((piece) => piece.includes(secret))).toHaveLength(1);
  });

  it("where this process's own output is captured (a module host), an inherited stream is left to the command: it writes straight into this process's stdout", async () => {
    const { spawn, got } = capturing(true);
    const { ino, dev } = fstatSync(1);
    // The command checks that its fd 1 is this process's (and writes nothing to it).
    const child = spawn(
      process.execPath,
      ['-e', `const s = require('fs').fstatSync(1); process.exit(s.ino === ${ino} && s.dev === ${dev} ? 0 : 3)`],
      { stdio: ['ignore', 'inherit', 'ignore'] },
    );
    expect(child.stdout).toBeNull();
    expect(await closed(child)).toBe(0);
    expect(got.stdout).toEqual([]);
  });
});

/**
 * A command writing `process.argv[1]` blocks of 64 KiB (512 lines of 128 bytes each) as fast as
 * its stdout takes them: each read of the pipe is a whole 64 KiB, more than a stream's 16 KiB
 * mark, as a busy command's reads are.
 */
const WRITE_BLOCKS = `const blocks = Number(process.argv[1]); const block = Buffer.alloc(65536, 120);
for (let at = 127; at < block.length; at += 128) block[at] = 10;
let written = 0; const more = () => { while (written < blocks) { written++; if (!process.stdout.write(block)) return void process.stdout.once('drain', more); } }; more();`;
const BLOCK_BYTES = 64 * 1024;

/** Waits until `enough()` or `ms` passed (at once on the bug: what it waits for is then seen early). */
async function until(enough: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !enough() && Date.now() < end;) await sleep(20);
}

/** What the module's `child.stdout` (a pass-through) holds, not read yet (bytes). */
function heldInCopy(child: ChildProcess): number {
  const copy = child.stdout as Duplex;
  return copy.readableLength + copy.writableLength;
}

/** Reads the whole of `child.stdout`, as the module sees it. */
async function readAll(child: ChildProcess): Promise<number> {
  let bytes = 0;
  for await (const chunk of child.stdout! as AsyncIterable<Buffer>) bytes += chunk.length;
  return bytes;
}

describe("ctx.spawn's piped stream has two readers (the module's output and the module): the command waits for the slower", () => {
  it("while the module's output is full, the command's stream waits, though the module reads its own copy as fast as it comes", async () => {
    let given = 0;
    let givenWhileFull = 0;
    let state: 'filling' | 'full' | 'released' = 'filling';
    let release = (): void => undefined;
    let full: Promise<void> | undefined;
    const { spawn } = moduleCommands({
      ...scope(),
      // Full once 256 KiB came (a module host's stdout past its bound while the worker is busy)
      // until the test releases it: one promise for every block meanwhile, as a host's stdout has.
      onOutput: (_stream, block) => {
        given += block.length;
        if (state === 'full') givenWhileFull += block.length;
        else if (state === 'filling' && given >= 256 * 1024) {
          state = 'full';
          full = new Promise((resolve) => (release = resolve));
        }
        return state === 'full' ? full : undefined;
      },
    });
    const warnings: string[] = [];
    const onWarning = (warning: Error) => void warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      const child = spawn(process.execPath, ['-e', WRITE_BLOCKS, '128'], { stdio: ['ignore', 'pipe', 'ignore'] });
      const read = readAll(child);
      // Full first (the command's first 256 KiB: a process start, seconds on a loaded machine;
      // the test's timeout bounds it), then 8 MiB: the command has it written well within a
      // second unless its stream waits. That second only decides whether the old bug shows; the
      // stream waits however long the test looks.
      await until(() => state === 'full', 15_000);
      expect(state).toBe('full');
      await until(() => givenWhileFull > 1024 * 1024, 1_000);
      // Before the fix, the module's reads resumed the stream: 7.75 MiB went on while full.
      expect(givenWhileFull).toBeLessThan(256 * 1024);
      state = 'released';
      release();
      // Then all of it reaches both, the one 'drain' listener of a pipe at most on the copy.
      expect(await read).toBe(128 * BLOCK_BYTES);
      await until(() => given === 128 * BLOCK_BYTES, 5_000);
      expect(given).toBe(128 * BLOCK_BYTES);
      expect(child.stdout!.listenerCount('drain')).toBeLessThanOrEqual(1);
      expect(warnings).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it("while the module has not read its copy yet, the command's stream waits, though the module's output takes everything", async () => {
    let given = 0;
    const { spawn } = moduleCommands({
      ...scope(),
      // Full for a moment after each block (a module host's stdout at its bound, drained at once).
      onOutput: (_stream, block) => {
        given += block.length;
        return new Promise<void>((resolve) => setImmediate(resolve));
      },
    });
    const child = spawn(process.execPath, ['-e', WRITE_BLOCKS, '128'], { stdio: ['ignore', 'pipe', 'ignore'] });
    await until(() => heldInCopy(child) > 1024 * 1024, 1_000);
    // Held for the module: a pipe's buffers, not the command's 8 MiB (before the fix, the
    // output's resumes overrode the copy's pause and it held all of it).
    expect(heldInCopy(child)).toBeLessThan(256 * 1024);
    expect(given).toBeLessThan(1024 * 1024);
    expect(await readAll(child)).toBe(128 * BLOCK_BYTES);
    await until(() => given === 128 * BLOCK_BYTES, 5_000);
    expect(given).toBe(128 * BLOCK_BYTES);
  });
  it('a process the command left running writes on once the command exited: its stream still waits while the module has not read its copy', async () => {
    let given = 0;
    const { spawn } = moduleCommands({ ...scope(), onOutput: (_stream, block) => void (given += block.length) });
    // `sh` exits once the stream waits; the writer it started in the background holds the pipe.
    const child = spawn('sh', ['-c', `"${process.execPath}" -e "$1" 128 & sleep 0.5`, 'sh', WRITE_BLOCKS], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    await new Promise((resolve) => child.on('exit', resolve));
    // Node resumes a child's streams when it exits: before the fix, the writer's 8 MiB then ran
    // on into the copy.
    await until(() => heldInCopy(child) > 1024 * 1024, 1_000);
    expect(heldInCopy(child)).toBeLessThan(256 * 1024);
    expect(await readAll(child)).toBe(128 * BLOCK_BYTES);
    expect(given).toBe(128 * BLOCK_BYTES);
  });

  it("a module that destroys its copy reads no more of it: the command goes on, its output whole to the module's output", async () => {
    let given = 0;
    const { spawn } = moduleCommands({ ...scope(), onOutput: (_stream, block) => void (given += block.length) });
    const child = spawn(process.execPath, ['-e', WRITE_BLOCKS, '64'], { stdio: ['ignore', 'pipe', 'ignore'] });
    child.stdout!.once('data', () => child.stdout!.destroy());
    // Before the fix, the copy's pause was never undone: the command waited forever on its pipe.
    const code = await Promise.race([
      new Promise((resolve) => child.on('close', resolve)),
      sleep(10_000).then(() => 'still running'),
    ]);
    expect(code).toBe(0);
    expect(given).toBe(64 * BLOCK_BYTES);
  });
});

describe('splitLines and LineSplitter', () => {
  it('split at line breaks and into pieces of at most the length, cutting nothing away', () => {
    expect(splitLines('a\r\nb\nccccc', 2)).toEqual(['a', 'b', 'cc', 'cc', 'c']);
    expect(splitLines('a\nb\n\nc', 2)).toEqual(['a', 'b', '', 'c']);
    const got: string[] = [];
    const splitter = new LineSplitter((block) => got.push(...splitLines(block, 3)), 3);
    splitter.push('ab');
    splitter.push('cdef\ngh');
    splitter.flush();
    expect(got).toEqual(['abc', 'def', 'gh']);
  });

  it("gives a chunk's whole lines as one block (no call per line), the unfinished one with the next chunk", () => {
    const blocks: string[] = [];
    const splitter = new LineSplitter((block) => blocks.push(block), 100);
    splitter.push('one\ntwo\r\nthree\r\nfo');
    splitter.push('ur\n\n');
    splitter.push('unfinished');
    splitter.flush();
    expect(blocks).toEqual(['one\ntwo\r\nthree', 'four\n', 'unfinished']);
    expect(blocks.flatMap((block) => splitLines(block))).toEqual(['one', 'two', 'three', 'four', '', 'unfinished']);
  });

  it('ByteLineSplitter: the whole lines of each chunk as the bytes that came, an unfinished line past the bound in pieces cut between characters', () => {
    const blocks: string[] = [];
    const splitter = new ByteLineSplitter((block) => blocks.push(block.toString()), 4);
    splitter.push(Buffer.from('one\ntwo\r\nth'));
    splitter.push(Buffer.from('ree\n'));
    // 'aé€b': 1 + 2 + 3 + 1 bytes: the first 4 bytes end inside '€', so the cut comes before it.
    splitter.push(Buffer.from('aé€b'));
    splitter.push(Buffer.from('c'));
    splitter.flush();
    expect(blocks).toEqual(['one\ntwo\r\n', 'three\n', 'aé\n', '€b\n', 'c\n']);
  });

  it("ByteLineSplitter: a line begun in an earlier chunk is given alone, the chunk's other whole lines as a view of the chunk, not a copy", () => {
    const blocks: Buffer[] = [];
    const splitter = new ByteLineSplitter((block) => blocks.push(block));
    splitter.push(Buffer.from('one\ntw'));
    const chunk = Buffer.from('o\nthree\nfour\nfi');
    splitter.push(chunk);
    splitter.push(Buffer.from('ve\n'));
    expect(blocks.map(String)).toEqual(['one\n', 'two\n', 'three\nfour\n', 'five\n']);
    // The chunk's own lines share its memory (a module host passed every read of a 64 KiB pipe on
    // as a copy of it when a line ran across two reads, as one nearly always does).
    expect(blocks[2]!.buffer).toBe(chunk.buffer);
    expect(blocks[2]!.byteOffset).toBe(chunk.byteOffset + 2);
  });
});
