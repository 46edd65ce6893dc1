import { createReadStream, existsSync, statSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ArtifactClient, BlobDamagedError, digestFile, VerifyingStream } from '@mpd/client';
import { create } from 'tar';
import { afterEach, describe, expect, it } from 'vitest';
import { startHostileBlobServer, within } from '../../test/hostile-blob-server.js';
import { BlobCache, type BlobCacheOptions } from './blob-cache.js';
import type { BlobFollower } from './blob-progress.js';
import { type Digest, entryProblem, moduleArtifacts } from './module-artifacts.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/**
 * A worker's side over a store that is a directory (`store/<sha256>`): the real cache, fed by
 * copying from it, so these tests need no orchestrator.
 */
async function setUp(cacheOptions: Partial<Pick<BlobCacheOptions, 'maxBytes' | 'open'>> = {}) {
  const root = await mkdtemp(join(tmpdir(), 'mpd-artifacts-'));
  dirs.push(root);
  const store = join(root, 'store');
  await mkdir(store);
  const cache = new BlobCache({
    dir: join(root, 'cache'),
    maxBytes: 10 * 1024 * 1024,
    download: async (sha256, path) => {
      await copyFile(join(store, sha256), path);
      return { size: (await stat(path)).size };
    },
    // Verified as `ArtifactClient.get` verifies: the last chunk held back until the whole hashes to its name.
    open: async (sha256) => {
      const { size } = await stat(join(store, sha256));
      const body = new VerifyingStream(sha256, size);
      pipeline(createReadStream(join(store, sha256)), body).catch(() => undefined);
      return { size, body };
    },
    ...cacheOptions,
  });
  /** The digests `upload` passed along with its archives, and the archives' own, read afterwards. */
  const puts: Array<{ given: Digest | undefined; actual: Digest }> = [];
  const transport = {
    put: async (path: string, given?: Digest) => {
      const digest = await digestFile(path);
      puts.push({ given, actual: digest });
      await copyFile(path, join(store, digest.sha256));
      return digest;
    },
    checkOut: (sha256: string) => cache.checkOut(sha256),
    follow: (sha256: string, follower: BlobFollower, signal: AbortSignal) => cache.follow(sha256, follower, signal),
  };
  const work = join(root, 'work');
  await mkdir(work);
  const artifacts = moduleArtifacts({
    module: 'build',
    transport,
    workingDirectory: work,
    scratchDir: join(root, 'scratch'),
  }).api;
  return { root, store, work, artifacts, puts, cache, transport };
}

describe('ctx.artifacts', () => {
  it('uploads the files matching the globs and downloads them byte-identical into another directory', async () => {
    const { work, artifacts } = await setUp();
    await mkdir(join(work, 'dist/nested'), { recursive: true });
    await writeFile(join(work, 'dist/app.js'), 'console.log(1)');
    await writeFile(join(work, 'dist/nested/.hidden'), Buffer.from([0, 1, 2, 255]));
    await writeFile(join(work, 'dist/app.js.map'), '{}');
    const ref = await artifacts.upload('dist', ['dist/**', '!**/*.map']);
    expect(ref).toMatchObject({ name: 'dist', files: 2, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(JSON.parse(JSON.stringify(ref))).toEqual(ref);

    expect(await artifacts.download(ref, 'restored')).toEqual({ files: 2 });
    expect(await readFile(join(work, 'restored/dist/app.js'), 'utf8')).toBe('console.log(1)');
    expect([...(await readFile(join(work, 'restored/dist/nested/.hidden')))]).toEqual([0, 1, 2, 255]);
    expect(await readdir(join(work, 'restored/dist'))).not.toContain('app.js.map');
  });

  it('downloads a blob larger than the cache keeps through a socket as it arrives: byte-identical, nothing written to the cache; a damaged one leaves nothing in the destination', async () => {
    // A 1 MiB bound under the archive's 3 MiB: streamed (a blob larger than the cache bound is).
    const { root, store, work, artifacts, cache } = await setUp({ maxBytes: 1024 * 1024 });
    await mkdir(join(work, 'dist'));
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    await writeFile(join(work, 'dist/big.bin'), big);
    await writeFile(join(work, 'dist/app.js'), 'console.log(1)');
    const ref = await artifacts.upload('dist', 'dist/**');
    // (This transport's `put` leaves nothing in the cache: as on a worker other than the producer's.)
    const cacheFiles = async () =>
      (await readdir(join(root, 'cache'), { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile());

    expect(await artifacts.download(ref, 'restored')).toEqual({ files: 2 });
    expect((await readFile(join(work, 'restored/dist/big.bin'))).equals(big)).toBe(true);
    expect(await readFile(join(work, 'restored/dist/app.js'), 'utf8')).toBe('console.log(1)');
    expect(await cacheFiles()).toEqual([]);
    expect(cache.has(ref.sha256)).toBe(false);

    // The store's copy damaged past the archive's first entry: refused, and `damaged` never appears.
    const tampered = await readFile(join(store, ref.sha256));
    tampered[tampered.length - 2048]! ^= 1;
    await writeFile(join(store, ref.sha256), tampered);
    await expect(artifacts.download(ref, 'damaged')).rejects.toBeInstanceOf(BlobDamagedError);
    expect((await readdir(work)).sort()).toEqual(['dist', 'restored']);
    expect(await cacheFiles()).toEqual([]);
  });

  it("ends with its execution's stop: a stalled download rejects with the reason at once, leaves no file in its directory (nor once the bytes come), and another consumer of the blob still gets it", async () => {
    // The store sends the blob's first 64 KiB, then holds the rest back until released (as a stalled network would).
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let firstChunkSent!: () => void;
    const servedFirstChunk = new Promise<void>((resolve) => (firstChunkSent = resolve));
    const { root, store, work, artifacts, transport } = await setUp({
      open: async (sha256) => {
        const bytes = await readFile(join(store, sha256));
        const body = new VerifyingStream(sha256, bytes.length);
        const held = Readable.from(
          (async function* () {
            // In two: the verifying stream holds each chunk until the next comes.
            yield bytes.subarray(0, 32 * 1024);
            yield bytes.subarray(32 * 1024, 64 * 1024);
            firstChunkSent();
            await released;
            yield bytes.subarray(64 * 1024);
          })(),
        );
        pipeline(held, body).catch(() => undefined);
        return { size: bytes.length, body };
      },
    });
    await mkdir(join(work, 'dist'));
    const big = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) % 251;
    await writeFile(join(work, 'dist/big.bin'), big);
    await writeFile(join(work, 'dist/app.js'), 'console.log(1)');
    const ref = await artifacts.upload('dist', 'dist/**');

    const stoppedWork = join(root, 'stopped');
    await mkdir(stoppedWork);
    const stop = new AbortController();
    const stopped = moduleArtifacts({
      module: 'build',
      transport,
      workingDirectory: stoppedWork,
      scratchDir: join(root, 'scratch'),
      moduleSignal: () => stop.signal,
    }).api;
    const download = stopped.download(ref, 'in/restored');
    download.catch(() => undefined);
    const other = artifacts.download(ref, 'other');
    await within(servedFirstChunk, 5_000, 'the store sent nothing');
    // The first bytes are extracted into the staging directory before the stop.
    const staged = async () =>
      (await readdir(join(stoppedWork, 'in'), { recursive: true, withFileTypes: true })).filter((entry) =>
        entry.isFile(),
      );
    const deadline = Date.now() + 10_000;
    while ((await staged()).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect((await staged()).length).toBeGreaterThan(0);

    // Ended by the stop, not by the bytes: they are held until `release()`, below, so a download
    // that waited for them would not end at all. Hence 10 s rather than 3, and no bound on the
    // milliseconds the stop took (it was < 1 s): wall-clock bounds a loaded machine can miss.
    const reason = new Error('Module timed out after 120ms');
    stop.abort(reason);
    await expect(within(download, 10_000, 'the download went on after the stop')).rejects.toBe(reason);
    expect(await readdir(join(stoppedWork, 'in'))).toEqual([]); // neither `restored` nor its staging directory

    release();
    expect(await within(other, 10_000, 'the other consumer got nothing')).toEqual({ files: 2 });
    expect((await readFile(join(work, 'other/dist/big.bin'))).equals(big)).toBe(true);
    expect(await readFile(join(work, 'other/dist/app.js'), 'utf8')).toBe('console.log(1)');
    await new Promise((r) => setTimeout(r, 200));
    expect(await readdir(join(stoppedWork, 'in'))).toEqual([]);

    // Stopped before it starts: rejects with the reason, asks the store for nothing.
    await expect(stopped.download(ref, 'late')).rejects.toBe(reason);
    expect(await readdir(stoppedWork)).toEqual(['in']);
  }, 40_000);

  it('the end with no call running resolves; an upload or a download started after it (code the module left running) rejects at once, writing nothing', async () => {
    const { root, work, transport } = await setUp();
    const execution = moduleArtifacts({
      module: 'build',
      transport,
      workingDirectory: work,
      scratchDir: join(root, 'scratch'),
    });
    await execution.end();
    const ref = { name: 'late', sha256: 'a'.repeat(64), size: 1, files: 1, compression: 'none' as const };
    await expect(execution.api.download(ref, 'late')).rejects.toThrow(
      'ctx.artifacts: the module ended before this upload or download did',
    );
    await writeFile(join(work, 'late.txt'), 'late');
    await expect(execution.api.upload('late', 'late.txt')).rejects.toThrow(
      'ctx.artifacts: the module ended before this upload or download did',
    );
    expect(await readdir(work)).toEqual(['late.txt']);
  });

  it('an upload never awaited ends with its module: its transport still sending, the end resolves, the upload rejects with its reason (handled), and its archive is removed', async () => {
    const { root, work, transport } = await setUp();
    let sending!: () => void;
    const sent = new Promise<void>((resolve) => (sending = resolve));
    const execution = moduleArtifacts({
      module: 'build',
      // Sends for ever: only the end stops waiting for it.
      transport: { ...transport, put: () => (sending(), new Promise<never>(() => {})) },
      workingDirectory: work,
      scratchDir: join(root, 'scratch'),
    });
    await writeFile(join(work, 'a.txt'), 'a');
    const upload = execution.api.upload('left', 'a.txt');
    const settled = upload.then(
      () => 'resolved',
      (error: unknown) => error,
    );
    await within(sent, 5_000, 'the upload sent nothing');
    const reason = new Error('Module timed out');
    await within(execution.end(reason), 5_000, 'the end did not resolve');
    expect(await within(settled, 1_000, 'the upload did not settle')).toBe(reason);
    expect(await readdir(join(root, 'scratch'))).toEqual([]);
  });

  it('packs into the upload as the archive grows (putPacking): the transport hears each length as it is written, then the digest; an end mid-pack stops the packing, the transport hears the failure, the upload rejects with the end’s reason and its archive is removed', async () => {
    const { root, work, transport } = await setUp();
    await writeFile(join(work, 'big.bin'), Buffer.alloc(24 * 1024 * 1024, 5));
    await writeFile(join(work, 'small.txt'), 'small');
    /** What the transport heard of each upload: lengths as they grew (read from the file then), and the end. */
    const heard: Array<{ lengths: number[]; fileAtLength: boolean[]; ended?: Digest | Error }> = [];
    let onWritten: (() => void) | undefined;
    const packing = {
      ...transport,
      put: () => Promise.reject(new Error('put is not used when putPacking is there')),
      putPacking: (path: string) => {
        const upload: (typeof heard)[number] = { lengths: [], fileAtLength: [] };
        heard.push(upload);
        let done!: (digest: Digest) => void;
        let failed!: (error: Error) => void;
        const stored = new Promise<Digest>((resolve, reject) => ((done = resolve), (failed = reject)));
        return {
          stored,
          follower: {
            written: (bytes: number) => {
              upload.lengths.push(bytes);
              // The bytes it is told of are in the file already (the uploader reads up to there).
              upload.fileAtLength.push(existsSync(path) && statSync(path).size >= bytes);
              onWritten?.();
            },
            ended: (outcome: { digest: Digest } | { error: Error }) => {
              upload.ended = 'digest' in outcome ? outcome.digest : outcome.error;
              if ('digest' in outcome)
                void digestFile(path).then((actual) =>
                  actual.sha256 === outcome.digest.sha256 ? done(actual) : failed(new Error('not the file')),
                );
              else failed(outcome.error);
            },
          },
        };
      },
    };
    const execution = moduleArtifacts({
      module: 'build',
      transport: packing,
      workingDirectory: work,
      scratchDir: join(root, 'scratch'),
    });
    const ref = await execution.api.upload('whole', ['big.bin', 'small.txt']);
    expect(heard[0]!.ended).toEqual({ sha256: ref.sha256, size: ref.size });
    expect(heard[0]!.lengths.length).toBeGreaterThan(1); // told as it grew, not once at the end
    expect(heard[0]!.lengths.at(-1)).toBe(ref.size);
    expect(heard[0]!.fileAtLength.every(Boolean)).toBe(true);

    // The module ends while its archive is being packed (at the first length the transport hears).
    const reason = new Error('Module cancelled');
    let ending: Promise<void> | undefined;
    onWritten = () => (ending ??= execution.end(reason));
    const settled = execution.api.upload('cut', ['big.bin', 'small.txt']).then(
      () => 'resolved',
      (error: unknown) => error,
    );
    expect(await within(settled, 10_000, 'the upload did not settle')).toBe(reason);
    await within(ending!, 5_000, 'the end did not resolve');
    expect(heard[1]!.ended).toBe(reason);
    expect(heard[1]!.lengths.at(-1)).toBeLessThan(ref.size);
    expect(await readdir(join(root, 'scratch'))).toEqual([]);
  });

  it("packs a plain tar by default and a gzipped one on request, hashed as it is written; both come back byte-identical, and so does an older reference's gzipped archive", async () => {
    const { store, work, artifacts, puts } = await setUp();
    await mkdir(join(work, 'dist'), { recursive: true });
    const text = 'compressible text '.repeat(4096);
    await writeFile(join(work, 'dist/app.js'), text);

    const plain = await artifacts.upload('plain', 'dist/**');
    const gzipped = await artifacts.upload('gzipped', 'dist/**', { compression: 'gzip' });
    expect(plain).toMatchObject({ compression: 'none', files: 1 });
    expect(gzipped).toMatchObject({ compression: 'gzip', files: 1 });
    // The digest travels with the archive (the worker does not read it to hash it) and is the archive's.
    expect(puts).toEqual([
      { given: { sha256: plain.sha256, size: plain.size }, actual: { sha256: plain.sha256, size: plain.size } },
      { given: { sha256: gzipped.sha256, size: gzipped.size }, actual: { sha256: gzipped.sha256, size: gzipped.size } },
    ]);
    const plainBlob = await readFile(join(store, plain.sha256));
    const gzippedBlob = await readFile(join(store, gzipped.sha256));
    expect(plainBlob.subarray(257, 262).toString()).toBe('ustar'); // a tar header, not gzip's 1f 8b
    expect(plainBlob.length).toBeGreaterThan(text.length);
    expect([...gzippedBlob.subarray(0, 2)]).toEqual([0x1f, 0x8b]);
    expect(gzippedBlob.length).toBeLessThan(text.length / 10);

    await artifacts.download(plain, 'from-plain');
    await artifacts.download(gzipped, 'from-gzipped');
    // A reference written before `compression` existed names a gzipped archive: read by its magic bytes.
    const { compression: _, ...older } = gzipped;
    await artifacts.download(older, 'from-older');
    for (const dir of ['from-plain', 'from-gzipped', 'from-older']) {
      expect(await readFile(join(work, dir, 'dist/app.js'), 'utf8')).toBe(text);
    }
    await expect(artifacts.upload('x', 'dist/**', { compression: 'zip' as never })).rejects.toThrow(
      `ctx.artifacts.upload('x'): compression must be 'none' or 'gzip', got "zip"`,
    );
  });

  it('refuses a bad name, globs that match nothing, and something that is not a reference', async () => {
    const { artifacts } = await setUp();
    await expect(artifacts.upload('../x', ['**'])).rejects.toThrow(/name "..\/x" must be/);
    await expect(artifacts.upload('none', ['nothing/**'])).rejects.toThrow(/no file under .* matches/);
    await expect(artifacts.download({ name: 'x', sha256: '../../etc', size: 1, files: 1 }, 'out')).rejects.toThrow(
      /not an artifact reference/,
    );
  });

  it.each([
    [
      'a .. path',
      async (src: string) => create({ gzip: true, cwd: join(src, 'inner'), preservePaths: true }, ['../evil.txt']),
    ],
    ['an absolute path', async (src: string) => create({ gzip: true, preservePaths: true }, [join(src, 'evil.txt')])],
    ['a symbolic link out', async (src: string) => create({ gzip: true, cwd: src }, ['link-out'])],
  ])('refuses an archive with %s and writes nothing outside (or inside) the destination', async (_what, pack) => {
    const { root, store, work, artifacts } = await setUp();
    const src = join(root, 'src');
    await mkdir(join(src, 'inner'), { recursive: true });
    await writeFile(join(src, 'evil.txt'), 'evil');
    await symlink('../../../outside', join(src, 'link-out'));
    const archive = join(root, 'hostile.tgz');
    const stream = (await pack(src)) as unknown as NodeJS.ReadableStream;
    const chunks: Buffer[] = [];
    for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
    await writeFile(archive, Buffer.concat(chunks));
    const digest = await digestFile(archive);
    await copyFile(archive, join(store, digest.sha256));

    await expect(
      artifacts.download({ name: 'hostile', sha256: digest.sha256, size: digest.size, files: 1 }, 'dest'),
    ).rejects.toThrow(/the archive is refused, nothing was extracted/);
    expect(await readdir(work)).toEqual([]);
    expect((await readdir(root)).sort()).toEqual(['cache', 'hostile.tgz', 'src', 'store', 'work']);
    expect(existsSync(join(root, '..', 'outside'))).toBe(false);
  });

  it('extracts while downloading over HTTP: an offending entry after good ones stops the download at once, and nothing is left in the destination or the cache', async () => {
    const root = await mkdtemp(join(tmpdir(), 'mpd-artifacts-wire-'));
    dirs.push(root);
    // The store holds the archive's end back: a download that waited for the whole blob before checking would never end.
    const store = await startHostileBlobServer(root);
    const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
    try {
      const cache = new BlobCache({
        dir: join(root, 'cache'),
        maxBytes: 10 * 1024 * 1024,
        download: () => Promise.reject(new Error('the whole-file download is not expected')),
        open: (blob) => client.get(blob),
      });
      const work = join(root, 'work');
      await mkdir(work);
      const artifacts = moduleArtifacts({
        module: 'build',
        transport: {
          put: () => Promise.reject(new Error('no upload here')),
          checkOut: (blob) => cache.checkOut(blob),
          follow: (blob, follower, signal) => cache.follow(blob, follower, signal),
        },
        workingDirectory: work,
        scratchDir: join(root, 'scratch'),
      }).api;
      const ref = { name: 'hostile', sha256: store.sha256, size: store.size, files: 3 };
      // The store never sends the archive's end: a download that waited for it would never end,
      // so any deadline tells the two apart. 15 s each rather than 5: a loaded machine (two suites
      // side by side, load 20-40) took longer than 5 s to read 512 KiB and refuse the entry.
      await expect(within(artifacts.download(ref, 'out/dest'), 15_000, 'no answer')).rejects.toThrow(
        /the archive is refused, nothing was extracted: "..\/evil.txt" has a .. segment/,
      );
      await within(store.connectionClosed, 15_000, 'the GET was not abandoned');
      expect(await readdir(join(work, 'out'))).toEqual([]); // neither `dest` nor its staging directory
      expect(cache.has(store.sha256)).toBe(false);
      expect((await readdir(join(root, 'cache'))).filter((name) => name !== '.checkouts')).toEqual([]);
      const [own] = await readdir(join(root, 'cache', '.checkouts'));
      expect(await readdir(join(root, 'cache', '.checkouts', own!))).toEqual([]); // no partial download, no link
      expect(existsSync(join(root, 'evil.txt'))).toBe(false);
    } finally {
      await client.close();
      await store.close();
    }
  }, 40_000);

  it('entryProblem: allows files, directories and links that stay inside; refuses the rest', () => {
    const dest = '/work/dest';
    expect(entryProblem({ path: 'a/b.txt', type: 'File', linkpath: '' }, dest)).toBeUndefined();
    expect(entryProblem({ path: 'a/link', type: 'SymbolicLink', linkpath: '../b.txt' }, dest)).toBeUndefined();
    expect(entryProblem({ path: 'a/link', type: 'SymbolicLink', linkpath: '../../b.txt' }, dest)).toMatch(/outside/);
    expect(entryProblem({ path: 'hard', type: 'Link', linkpath: '../etc/passwd' }, dest)).toMatch(/outside/);
    expect(entryProblem({ path: 'x', type: 'SymbolicLink', linkpath: '/etc/passwd' }, dest)).toMatch(/absolute/);
    expect(entryProblem({ path: 'dev', type: 'CharacterDevice', linkpath: '' }, dest)).toMatch(/not a file/);
    expect(entryProblem({ path: 'a/../../x', type: 'File', linkpath: '' }, dest)).toMatch(/\.\. segment/);
    expect(entryProblem({ path: 'C:\\x', type: 'File', linkpath: '' }, dest)).toMatch(/absolute/);
  });
});
