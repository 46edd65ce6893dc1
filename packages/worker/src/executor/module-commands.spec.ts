import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { CommandFailedError, moduleCommands } from './module-commands.js';

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
