import { tmpdir } from 'node:os';
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
});
