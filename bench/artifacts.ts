/**
 * Benchmark 6: artifact throughput. A module on worker A (`--tags producer`) uploads a file of
 * `bytes` bytes (the driver's source file, the one the bare transfer moves) with `ctx.artifacts.upload` (packed as a plain tar, its default, hashed as it is
 * written, `PUT` to the orchestrator's store); a module on worker B (`--tags consumer`) downloads
 * it with `ctx.artifacts.download` (`GET` hashed as it arrives, streamed over a local socket to
 * B's module host, which extracts it as it comes, and written into B's cache at the same time:
 * the default configuration, the judged figure). Each
 * module times its own call. Baseline, in the same run, before and after: the same file `PUT`
 * to a bare node `http` server that writes it to a file, then `GET` back into a file, by this
 * driver process. Throughput = bytes / (upload + download time). RSS growth (peak minus the
 * first sample, /proc VmRSS every 25 ms) of every process while the artifact moves: the
 * orchestrator, each worker, each worker's module host (from when it appears). Each run has a
 * fresh cluster and store (the store and the caches would otherwise already hold the blob).
 *
 * Both sides start from the same state: the source file is written once by the driver, and before
 * each timed transfer (bare or mpd) the driver runs `sync`, so that neither begins with the other's
 * (or the source's) dirty pages being written back on the same cores (before round E's second half
 * the producer wrote the GiB inside its module just before its timing began: mpd's transfer started
 * with ~1.7 GB dirty), then waits until /proc/meminfo's Dirty + Writeback is under
 * {@link SETTLE_DIRTY_BOUND} (or the config's `settleTimeoutMs` passes: a line on stderr), since
 * `sync` alone left the bare side swinging 210–349 MiB/s (docs/performance.md, round I). The dirty + writeback
 * pages at each start and the wait are rows. What swung it was not the dirty pages but the VM's
 * free memory (`lib/memory.ts`; docs/performance.md, round J): the free memory the guest reported to the host
 * and the CPU the hypervisor stole while each side was timed are rows too.
 *
 * Pairs: a warm-up pair first, not judged (the first transfers start from whatever ran before the
 * bench); then {@link ArtifactsConfig.runs} pairs, each one bare transfer and one mpd transfer side
 * by side, bare first in even pairs and mpd first in odd ones. The judged figure is the median of
 * the pairs' ratios (mpd's throughput over the bare one's beside it); its spread is printed.
 *
 * Beside them, not judged: in each pair one more mpd transfer (after mpd's when bare went first,
 * before it otherwise), worker B started with a `--cache-size` of half the file, under the blob's
 * size, so its download takes the streamed path (from the `GET` through the hash check over a
 * local socket into the extracting module host, no cache file, nothing kept), paired with the same
 * bare transfer.
 */
import { createReadStream, createWriteStream, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { RunTimings } from './servers/orchestrator.js';
import { ARTIFACT_FILE, writeBenchFile } from './lib/bench-file.js';
import { BenchProcess, benchPath, startBenchOrchestrator, startWorkerCli } from './lib/processes.js';
import { type Row, rowsOf } from './lib/report.js';
import { dirtyBytes, MB, RssSampler, type RssFigures, TIMELINE_BUCKET_MS } from './lib/rss.js';
import { liveChildren } from './lib/proc-times.js';
import { median } from './lib/stats.js';
import { reportedBytes, stealMs } from './lib/memory.js';

export interface ArtifactsConfig {
  bytes: number;
  /** Judged pairs (each: one bare and one mpd transfer, and the streamed row's mpd transfer). */
  runs: number;
  /** A first pair, not judged (its figures on stderr and in the details): the first transfers of a bench run start from whatever the machine did before. */
  warmup: boolean;
  /** Longest wait, after `sync`, for dirty + writeback pages to fall under {@link SETTLE_DIRTY_BOUND} before each timed side, ms. */
  settleTimeoutMs: number;
}

/** Dirty + Writeback (bytes) under which a timed side may start: small against the GiB each side writes. */
export const SETTLE_DIRTY_BOUND = 64 * MB;

/**
 * `MPD_BENCH_ARTIFACT_RUNS` overrides the full bench's judged pairs (6: as many with bare first as
 * with mpd first; about 20 s a pair with the streamed row, about 2.5 minutes in all with the warm-up
 * pair); `MPD_BENCH_ARTIFACT_WARMUP=0` leaves the warm-up pair out.
 */
export const ARTIFACTS_FULL: ArtifactsConfig = {
  bytes: 1024 * MB,
  runs: Number(process.env.MPD_BENCH_ARTIFACT_RUNS ?? 6),
  warmup: process.env.MPD_BENCH_ARTIFACT_WARMUP !== '0',
  settleTimeoutMs: 30_000,
};
/** The smoke run waits little: it checks the code path, not the figures (CI's disk may be busy). */
export const ARTIFACTS_SMOKE: ArtifactsConfig = { bytes: 4 * MB, runs: 1, warmup: false, settleTimeoutMs: 2_000 };

const PIPELINE = benchPath('pipelines/artifacts.pipeline.ts');

interface Transfer {
  uploadMs: number;
  downloadMs: number;
  rss: Record<string, RssFigures>;
  /** CPU time each process used from the upload's start to the download's end, ms (timeline buckets in that window). */
  cpuMs: Record<string, number>;
  /** Dirty + Writeback of /proc/meminfo when the transfer's timing began, bytes (after the driver's {@link settle}). */
  dirtyAtStart: number;
  /** How long {@link settle} waited before this transfer (`sync` and the drain), ms. */
  settleMs: number;
  /** Free memory the guest reported to the host while the transfer was timed, bytes (NaN where not known). */
  reportedBytes: number;
  /** CPU time the hypervisor took from the machine's cores while the transfer was timed, ms. */
  stealMs: number;
}

/**
 * Writes every dirty page back (`sync`), then waits until Dirty + Writeback is under
 * {@link SETTLE_DIRTY_BOUND} (polled every 100 ms) or `timeoutMs` passes (a line on stderr), so that
 * a timed transfer, bare or mpd, does not start behind the other's (or anyone's) write-back.
 * Returns the time it took, ms.
 */
async function settle(timeoutMs: number): Promise<number> {
  const started = performance.now();
  execFileSync('sync');
  for (;;) {
    const dirty = dirtyBytes();
    // NaN (no /proc/meminfo): nothing to wait for.
    if (!(dirty >= SETTLE_DIRTY_BOUND)) break;
    if (performance.now() - started >= timeoutMs) {
      process.stderr.write(
        `artifacts: dirty + writeback still ${Math.round(dirty / MB)} MB after ${timeoutMs} ms (bound ${SETTLE_DIRTY_BOUND / MB} MB); starting anyway\n`,
      );
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return performance.now() - started;
}

/** What the host did while a side was timed: the free memory it took back and the CPU it stole. */
function hostWatch(): () => { reportedBytes: number; stealMs: number } {
  const reported = reportedBytes();
  const steal = stealMs();
  return () => ({ reportedBytes: reportedBytes() - reported, stealMs: stealMs() - steal });
}

/** The machine over time, one sample per {@link TIMELINE_BUCKET_MS} (NaN where /proc cannot be read). */
interface MachineSamples {
  /** Dirty + Writeback of /proc/meminfo, bytes, at each step's start. */
  dirty: number[];
  /** CPU time every core spent busy (not idle or waiting on I/O: the kernel's flusher threads and every process) in each step, ms. */
  busyMs: number[];
}

/** Samples {@link MachineSamples} from now until the returned stop is called. */
function sampleMachine(): () => MachineSamples {
  const samples: MachineSamples = { dirty: [], busyMs: [] };
  let lastBusy: number | undefined;
  const sample = (): void => {
    try {
      samples.dirty.push(dirtyBytes());
      // /proc/stat's first line: cpu user nice system idle iowait irq softirq steal …, in 10 ms ticks.
      const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8')
        .split('\n', 1)[0]!
        .trim()
        .split(/\s+/)
        .slice(1)
        .map(Number);
      const busy = (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) * 10;
      if (lastBusy !== undefined) samples.busyMs.push(busy - lastBusy);
      lastBusy = busy;
    } catch {
      samples.dirty.push(Number.NaN);
      samples.busyMs.push(Number.NaN);
    }
  };
  sample();
  const timer = setInterval(sample, TIMELINE_BUCKET_MS);
  return () => {
    clearInterval(timer);
    return samples;
  };
}

/** The CPU of each group in the buckets of `rss` between `from` and `to` (ms after the sampler's start). */
function cpuIn(rss: Record<string, RssFigures>, from: number, to: number): Record<string, number> {
  const first = Math.floor(from / TIMELINE_BUCKET_MS);
  const last = Math.floor(to / TIMELINE_BUCKET_MS);
  return Object.fromEntries(
    Object.entries(rss).map(([name, figures]) => [
      name,
      figures.cpuTimeline.slice(first, last + 1).reduce((sum, ms) => sum + ms, 0),
    ]),
  );
}

/**
 * With MPD_BENCH_TIMELINE set: each process's CPU per {@link TIMELINE_BUCKET_MS} on stderr, from
 * `from` to `to` (ms after the sampler's start), the marks (upload's end, …) where they fall.
 */
function printTimeline(
  title: string,
  rss: Record<string, RssFigures>,
  from: number,
  to: number,
  marks: Record<string, number>,
  machine: MachineSamples,
): void {
  if (!process.env.MPD_BENCH_TIMELINE) return;
  const names = Object.keys(rss);
  const lines = [
    `${title}: CPU ms per ${TIMELINE_BUCKET_MS} ms (each process; the whole machine, every core); the kernel's dirty + writeback pages, MB`,
    ['t (s)', ...names, 'machine', 'dirty MB'].map((name) => name.padStart(10)).join(' '),
  ];
  for (let bucket = Math.floor(from / TIMELINE_BUCKET_MS); bucket <= Math.floor(to / TIMELINE_BUCKET_MS); bucket++) {
    const at = bucket * TIMELINE_BUCKET_MS;
    const marked = Object.entries(marks)
      .filter(([, ms]) => ms >= at && ms < at + TIMELINE_BUCKET_MS)
      .map(([mark]) => mark);
    const cells = names.map((name) => String(rss[name]!.cpuTimeline[bucket] ?? 0).padStart(10));
    cells.push(String(machine.busyMs[bucket] ?? 0).padStart(10));
    cells.push(String(Math.round((machine.dirty[bucket] ?? 0) / MB)).padStart(10));
    lines.push(
      `${((at - from) / 1000).toFixed(2).padStart(10)} ${cells.join(' ')}${marked.length ? `  <- ${marked.join(', ')}` : ''}`,
    );
  }
  process.stderr.write(`${lines.join('\n')}\n`);
}

/** `consumerArgs`: more flags for worker B (the streamed row's `--cache-size`). */
async function mpdTransfer(
  config: ArtifactsConfig,
  dir: string,
  source: string,
  consumerArgs: string[] = [],
): Promise<Transfer> {
  const env = {
    MPD_BENCH_ARTIFACT_BYTES: String(config.bytes),
    MPD_BENCH_ARTIFACT_DIR: join(dir, 'work'),
    MPD_BENCH_ARTIFACT_SOURCE: source,
  };
  const orchestrator = startBenchOrchestrator(PIPELINE, {
    ...env,
    MPD_BENCH_ARTIFACTS_DIR: join(dir, 'store'),
  });
  const workers: BenchProcess[] = [];
  try {
    const url = await orchestrator.listeningUrl(60_000);
    for (const role of ['producer', 'consumer']) {
      workers.push(
        startWorkerCli({
          id: `bench-${role}`,
          orchestratorUrl: url,
          slots: 1,
          env,
          pipeline: PIPELINE,
          extraArgs: [
            ...['--tags', role, '--cache-dir', join(dir, `cache-${role}`)],
            ...(role === 'consumer' ? consumerArgs : []),
          ],
        }),
      );
    }
    for (const worker of workers) await worker.listeningUrl(60_000);
    const [a, b] = workers as [BenchProcess, BenchProcess];
    const sampler = new RssSampler({
      orchestrator: () => [orchestrator.pid],
      'worker A': () => [a.pid],
      'module host on A': () => liveChildren(a.pid),
      'worker B': () => [b.pid],
      'module host on B': () => liveChildren(b.pid),
    }).start();
    const settleMs = await settle(config.settleTimeoutMs);
    const sampledFrom = Date.now();
    const machine = sampleMachine();
    const host = hostWatch();
    let timings: RunTimings;
    let rss: Record<string, RssFigures>;
    try {
      timings = await orchestrator.request<RunTimings>('run', { minWorkers: 2 });
    } finally {
      rss = sampler.stop();
    }
    const hosted = host();
    const machineSamples = machine();
    if (timings.status !== 'Successful') {
      throw new Error(`the artifact pipeline ended ${timings.status}:\n${a.recentOutput()}\n${b.recentOutput()}`);
    }
    type Timed = { startedAt: number; endedAt: number };
    const result = (name: string) => timings.modules.find((module) => module.name === name)!.result;
    const produced = result('produce') as Timed & { uploadMs: number; dirtyAtStart: number };
    const consumed = result('consume') as Timed & { downloadMs: number };
    const from = produced.startedAt - sampledFrom;
    const to = consumed.endedAt - sampledFrom;
    printTimeline(
      'mpd',
      rss,
      from,
      to,
      {
        'upload ends': produced.endedAt - sampledFrom,
        'download starts': consumed.startedAt - sampledFrom,
      },
      machineSamples,
    );
    return {
      uploadMs: produced.uploadMs,
      downloadMs: consumed.downloadMs,
      rss,
      cpuMs: cpuIn(rss, from, to),
      dirtyAtStart: produced.dirtyAtStart,
      settleMs,
      ...hosted,
    };
  } finally {
    await Promise.all([...workers.map((worker) => worker.stop()), orchestrator.stop()]);
  }
}

/** `PUT` then `GET` of `file` through the bare server at `url`, timed. */
async function bareTransfer(
  config: ArtifactsConfig,
  bare: BenchProcess,
  url: string,
  file: string,
  into: string,
): Promise<Transfer> {
  const settleMs = await settle(config.settleTimeoutMs);
  const sampler = new RssSampler({ 'bare server': () => [bare.pid], 'driver (client)': () => [process.pid] }).start();
  const machine = sampleMachine();
  const host = hostWatch();
  try {
    const size = statSync(file).size;
    const dirtyAtStart = dirtyBytes();
    let started = performance.now();
    await new Promise<void>((resolve, reject) => {
      // A connection of its own (node 20's global agent keeps connections alive: one left idle
      // while the other side ran could be closed by the server just as it is reused).
      const req = request(`${url}/blob`, {
        agent: false,
        method: 'PUT',
        headers: { 'content-length': size, 'content-type': 'application/octet-stream' },
      });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`PUT ${res.statusCode}`))));
      });
      req.on('error', reject);
      pipeline(createReadStream(file), req).catch(reject);
    });
    const uploadMs = performance.now() - started;
    started = performance.now();
    await new Promise<void>((resolve, reject) => {
      request(`${url}/blob`, { agent: false }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`GET ${res.statusCode}`));
        pipeline(res, createWriteStream(into)).then(resolve, reject);
      })
        .on('error', reject)
        .end();
    });
    const downloadMs = performance.now() - started;
    const hosted = host();
    if (statSync(into).size !== size) throw new Error('the bare download is short');
    const rss = sampler.stop();
    const total = uploadMs + downloadMs;
    printTimeline('bare', rss, 0, total, { 'upload ends': uploadMs }, machine());
    return { uploadMs, downloadMs, rss, cpuMs: cpuIn(rss, 0, total), dirtyAtStart, settleMs, ...hosted };
  } finally {
    sampler.stop();
    machine();
  }
}

export async function artifactsBench(config: ArtifactsConfig): Promise<{ rows: Row[]; details: unknown }> {
  const root = mkdtempSync(join(tmpdir(), 'mpd-bench-artifacts-'));
  const bareDir = join(root, 'bare');
  mkdirSync(bareDir);
  const bare = new BenchProcess('bare-http', benchPath('servers/bare-http.ts'), [], { MPD_BENCH_BARE_DIR: bareDir });
  try {
    const bareUrl = await bare.listeningUrl();
    // The one source file both sides move (the producer uploads it from this directory).
    const source = join(root, 'source');
    const file = join(source, ARTIFACT_FILE);
    await writeBenchFile(file, config.bytes);
    const baseline: Transfer[] = [];
    const mpd: Transfer[] = [];
    /** B's cache bound under the blob's size: its download streams (not judged). */
    const streamed: Transfer[] = [];
    const streamedArgs = ['--cache-size', `${Math.max(1, Math.floor(config.bytes / MB / 2))}mb`];
    /** The warm-up pair's transfers (not judged): bare, mpd, mpd streamed. */
    const warmup: Transfer[] = [];
    const say = (side: string, run: number, transfer: Transfer): void => {
      const written = Object.entries(transfer.rss)
        .map(([name, figures]) => `${name} ${Math.round(figures.writtenBytes / MB)}`)
        .join(', ');
      const mibs = config.bytes / MB / ((transfer.uploadMs + transfer.downloadMs) / 1_000);
      process.stderr.write(
        `artifacts ${run < 0 ? 'warm-up pair (not judged)' : `pair ${run + 1}`} ${side}: upload ${Math.round(transfer.uploadMs)} ms, download ${Math.round(transfer.downloadMs)} ms (${mibs.toFixed(0)} MiB/s), dirty + writeback at its start ${Math.round(transfer.dirtyAtStart / MB)} MB (after ${Math.round(transfer.settleMs)} ms of sync and drain), free memory reported to the host while timed ${Math.round(transfer.reportedBytes / MB)} MB, steal ${Math.round(transfer.stealMs)} ms, written to storage (MB): ${written}\n`,
      );
    };
    // `run` -1: the warm-up pair, kept apart.
    const bareOnce = async (run: number): Promise<void> => {
      const transfer = await bareTransfer(config, bare, bareUrl, file, join(root, 'download.bin'));
      (run < 0 ? warmup : baseline).push(transfer);
      say('bare', run, transfer);
      rmSync(join(root, 'download.bin'), { force: true });
      rmSync(join(bareDir, 'blob'), { force: true });
    };
    const mpdOnce = async (run: number, args: string[] = []): Promise<void> => {
      const dir = join(root, `run-${run}${args.length ? '-streamed' : ''}`);
      try {
        const transfer = await mpdTransfer(config, dir, source, args);
        (run < 0 ? warmup : args.length ? streamed : mpd).push(transfer);
        say(args.length ? 'mpd, streamed' : 'mpd', run, transfer);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    };
    // The first transfers of a bench run start from whatever ran before it (a file written, a
    // build, another bench): a pair of warm-up, not judged.
    if (config.warmup) {
      await bareOnce(-1);
      await mpdOnce(-1);
      await mpdOnce(-1, streamedArgs);
    }
    for (let run = 0; run < config.runs; run++) {
      // Alternating which goes first, so that neither always inherits the other's state; the
      // judged two side by side (the streamed row after them or before them).
      if (run % 2 === 0) {
        await bareOnce(run);
        await mpdOnce(run);
        await mpdOnce(run, streamedArgs);
      } else {
        await mpdOnce(run, streamedArgs);
        await mpdOnce(run);
        await bareOnce(run);
      }
    }
    const mib = config.bytes / MB;
    const benchmark = `6 artifacts, ${mib >= 1024 ? `${mib / 1024} GiB` : `${mib} MiB`} A -> store -> B`;
    const label = 'bare node http';
    const throughput = (run: Transfer) => mib / ((run.uploadMs + run.downloadMs) / 1_000);
    const row = rowsOf(benchmark, mpd, baseline, label);
    const growth = (group: string, baselineGroup?: string): Row => {
      const pick = (run: Transfer) => (run.rss[group]?.growth ?? Number.NaN) / MB;
      return {
        benchmark,
        metric: `RSS growth: ${group}`,
        unit: 'MB',
        value: median(mpd.map(pick)),
        runs: mpd.map(pick),
        ...(baselineGroup
          ? {
              baseline: median(baseline.map((run) => run.rss[baselineGroup]!.growth / MB)),
              baselineLabel: baselineGroup,
            }
          : {}),
        target: { on: 'value', kind: 'max', limit: 100 },
      };
    };
    // The judged figure: each mpd run against the bare run beside it (same minute, same machine
    // state), the median of those ratios. The ratio of the two medians (the throughput row's) pairs
    // figures of different runs: the bare transfer alone swings 2.5-7 s from run to run (round E),
    // so one slow bare run moved it by 0.1-0.2 (printed still, beside it).
    const paired = mpd.map((run, index) => throughput(run) / throughput(baseline[index]!));
    const pairedStreamed = streamed.map((run, index) => throughput(run) / throughput(baseline[index]!));
    const rows: Row[] = [
      {
        benchmark,
        metric: 'throughput ratio to bare, per pair (median of each mpd transfer over the bare one beside it)',
        unit: 'x',
        value: median(paired),
        runs: paired,
        target: { on: 'value', kind: 'min', limit: 0.7 },
        spread: true,
      },
      {
        benchmark,
        metric: `throughput ratio to bare, per pair, B's --cache-size ${streamedArgs[1]} under the blob: download streamed, not kept (not judged)`,
        unit: 'x',
        value: median(pairedStreamed),
        runs: pairedStreamed,
        spread: true,
      },
      { ...row('throughput, upload + download (ratio: of the medians)', 'MiB/s', throughput), spread: true },
      row('upload (ctx.artifacts.upload: pack and hash, PUT)', 'ms', (run) => run.uploadMs),
      row('download (ctx.artifacts.download: GET, check, extract)', 'ms', (run) => run.downloadMs),
      {
        benchmark,
        metric: "download, B's cache under the blob: streamed, not kept (not judged)",
        unit: 'ms',
        value: median(streamed.map((run) => run.downloadMs)),
        runs: streamed.map((run) => run.downloadMs),
      },
      row("dirty + writeback pages at the upload's start (after sync and drain)", 'MB', (run) => run.dirtyAtStart / MB),
      row(
        `wait before the side: sync, then dirty + writeback under ${SETTLE_DIRTY_BOUND / MB} MB`,
        'ms',
        (run) => run.settleMs,
      ),
      row(
        'free memory the guest reported to the host while timed (page_reporting: the next use of it faults it in)',
        'MB',
        (run) => run.reportedBytes / MB,
      ),
      row('CPU stolen by the hypervisor while timed (/proc/stat steal)', 'ms', (run) => run.stealMs),
      row(
        'bytes written to storage, every process (/proc/PID/io write_bytes)',
        'MB',
        (run) => Object.values(run.rss).reduce((sum, figures) => sum + figures.writtenBytes, 0) / MB,
      ),
      row('CPU, every process, upload start to download end', 'ms', (run) =>
        Object.values(run.cpuMs).reduce((sum, ms) => sum + ms, 0),
      ),
      ...['orchestrator', 'worker A', 'module host on A', 'worker B', 'module host on B'].map((group): Row => ({
        benchmark,
        metric: `CPU: ${group}`,
        unit: 'ms',
        value: median(mpd.map((run) => run.cpuMs[group] ?? Number.NaN)),
        runs: mpd.map((run) => run.cpuMs[group] ?? Number.NaN),
      })),
      growth('orchestrator', 'bare server'),
      growth('worker A'),
      growth('module host on A'),
      growth('worker B', 'driver (client)'),
      growth('module host on B'),
    ];
    return { rows, details: { config, mpd, streamed, baseline, warmup } };
  } finally {
    await bare.stop();
    rmSync(root, { recursive: true, force: true });
  }
}
