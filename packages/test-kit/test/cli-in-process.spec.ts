import { describe, expect, it } from 'vitest';
import { answeredInProcess, type CliEntry } from '../src/index.js';

/** An entry that exits with `code` once `release` resolves (a command line that answers late). */
const exitingAfter =
  (release: Promise<void>, code: number): CliEntry =>
  async () => {
    await release;
    process.stdout.write(`exit ${code}\n`);
    process.exit(code);
  };

describe('answeredInProcess', () => {
  it("captures what the command prints through console (log and info on stdout, error and warn on stderr), and restores console's methods after", async () => {
    const before = { log: console.log, info: console.info, error: console.error, warn: console.warn };
    const answer = await answeredInProcess(async () => {
      console.log('log %s', 'secret-1');
      console.info('info', { token: 'secret-2' });
      console.error('error secret-3');
      console.warn('warn secret-4');
      process.exit(2);
    }, []);
    expect(answer.exitCode).toBe(2);
    expect(answer.stdout).toBe("log secret-1\ninfo { token: 'secret-2' }\n");
    expect(answer.stderr).toBe('error secret-3\nwarn secret-4\n');
    expect({ log: console.log, info: console.info, error: console.error, warn: console.warn }).toEqual(before);
  });

  it('refuses a call while another runs (they share the process globals), and the first one still answers and restores them', async () => {
    const { write } = process.stdout;
    const { exit } = process;
    let release!: () => void;
    const first = answeredInProcess(exitingAfter(new Promise<void>((resolve) => (release = resolve)), 3), []);
    await expect(answeredInProcess(exitingAfter(Promise.resolve(), 4), [])).rejects.toThrow(/another call is running/);
    release();
    expect(await first).toEqual({ exitCode: 3, stdout: 'exit 3\n', stderr: '' });
    expect(process.stdout.write).toBe(write);
    expect(process.exit).toBe(exit);
    // Free again once the first one ended.
    expect((await answeredInProcess(exitingAfter(Promise.resolve(), 5), [])).exitCode).toBe(5);
  });
});
