/**
 * The artifact throughput benchmark's pipeline: `produce` (on the worker tagged `producer`)
 * uploads the driver's file of MPD_BENCH_ARTIFACT_BYTES bytes in MPD_BENCH_ARTIFACT_SOURCE (the
 * file the bare transfer moves, written and `sync`ed before the timing: without that directory it
 * writes one under MPD_BENCH_ARTIFACT_DIR/produce) with `ctx.artifacts.upload`; `consume` (on the worker tagged `consumer`) downloads
 * it with `ctx.artifacts.download` into MPD_BENCH_ARTIFACT_DIR/consume. Each times only its
 * artifact call (ms, in its result), not the writing of the file, and gives the call's start and
 * end (ms since the epoch) for the benchmark's timeline.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { ARTIFACT_FILE, writeBenchFile } from '../lib/bench-file.js';
import { dirtyBytes } from '../lib/rss.js';

const bytes = Number(process.env.MPD_BENCH_ARTIFACT_BYTES ?? 1024 * 1024);
const dir = process.env.MPD_BENCH_ARTIFACT_DIR ?? '.mpd/bench-artifacts';
const source = process.env.MPD_BENCH_ARTIFACT_SOURCE;
const FILE = ARTIFACT_FILE;

const produce = defineModule({
  name: 'produce',
  requires: { tags: ['producer'] },
  run: async (ctx) => {
    let baseDir = source;
    if (!baseDir) {
      baseDir = join(dir, 'produce');
      await writeBenchFile(join(baseDir, FILE), bytes);
    }
    const dirtyAtStart = dirtyBytes();
    const startedAt = Date.now();
    const started = performance.now();
    const ref = await ctx.artifacts.upload('blob', [FILE], { baseDir });
    return { ref, uploadMs: performance.now() - started, startedAt, endedAt: Date.now(), dirtyAtStart };
  },
});

const consume = defineModule({
  name: 'consume',
  dependsOn: ['produce'],
  requires: { tags: ['consumer'] },
  run: async (ctx) => {
    const { ref } = ctx.results.produce as { ref: Parameters<typeof ctx.artifacts.download>[0] };
    const startedAt = Date.now();
    const started = performance.now();
    await ctx.artifacts.download(ref, join(dir, 'consume'));
    const downloadMs = performance.now() - started;
    const endedAt = Date.now();
    const size = (await stat(join(dir, 'consume', FILE))).size;
    if (size !== bytes) throw new Error(`downloaded ${size} bytes, expected ${bytes}`);
    return { downloadMs, startedAt, endedAt };
  },
});

export default definePipeline({ name: `bench-artifacts-${bytes}`, modules: [produce, consume] });
