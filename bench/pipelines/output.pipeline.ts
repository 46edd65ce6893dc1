/**
 * The module output benchmark's pipeline: two modules that start the same command writing
 * MPD_BENCH_OUTPUT_LINES lines (see `outputLine`) through `ctx.spawn`. `loud` (category `loud`)
 * lets the worker capture and ship every line; `quiet` (category `quiet`) sends the command's
 * stdout to /dev/null (`stdio: 'ignore'`): the same work with its output discarded; `inherit`
 * (category `inherit`) gives the command an inherited stdout (`stdio: 'inherit'`): not read by
 * the module, captured all the same, written straight into the module host's stdout (or, with
 * `--isolation none`, into a pipe the worker reads); `read` (category `read`)
 * starts it with Node's own `child_process.spawn`, not through `ctx` (stdout `'pipe'`): the
 * module reads the stream to its end exactly as `loud` does, but nothing is captured, the bytes
 * go only to the module — `loud / read` is what capture costs on its own. Judged (round H):
 * `inherit / quiet`, the same module with its command's output captured or discarded. The driver
 * runs one category at a time. Each returns `{ t, ms }`: the monotonic clock when `run`
 * started (ns) and how long the command took (ms).
 */
import { spawn } from 'node:child_process';
import { defineModule, definePipeline, type ModuleContext } from '@mpd/pipeline';
import { OUTPUT_GENERATOR } from '../lib/output-lines.js';

const lines = Number(process.env.MPD_BENCH_OUTPUT_LINES ?? 1_000);

/**
 * A module starting the output generator with its stdout `stdout`, through `ctx.spawn` (the
 * worker captures what comes through a `'pipe'`) or, `via: 'node'`, through Node's own
 * `child_process.spawn` (nothing captured: the module alone reads the stream).
 */
function writer(stdout: 'pipe' | 'ignore' | 'inherit', via: 'ctx' | 'node' = 'ctx') {
  return async (ctx: ModuleContext): Promise<{ t: string; ms: number }> => {
    const t = process.hrtime.bigint();
    const args = ['-e', OUTPUT_GENERATOR, String(lines)];
    const stdio: ['ignore', typeof stdout, 'inherit'] = ['ignore', stdout, 'inherit'];
    const child =
      via === 'ctx'
        ? ctx.spawn(process.execPath, args, { stdio })
        : spawn(process.execPath, args, { stdio, cwd: ctx.workingDirectory, signal: ctx.signal });
    // `loud` and `read` read their stream to its end and make no use of it (the command never
    // waits on them); `quiet` and `inherit` have no stream to read.
    child.stdout?.resume();
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    });
    if (code !== 0) throw new Error(`the output generator exited ${code}`);
    return { t: t.toString(), ms: Number(process.hrtime.bigint() - t) / 1e6 };
  };
}

export default definePipeline({
  name: `bench-output-${lines}`,
  modules: [
    defineModule({ name: 'loud', category: 'loud', run: writer('pipe') }),
    defineModule({ name: 'quiet', category: 'quiet', run: writer('ignore') }),
    defineModule({ name: 'inherit', category: 'inherit', run: writer('inherit') }),
    defineModule({ name: 'read', category: 'read', run: writer('pipe', 'node') }),
  ],
});
