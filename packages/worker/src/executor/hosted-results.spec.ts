/**
 * A module host's result that goes by reference (over `--inline-result-size`): the host writes
 * it to its execution's file in its scratch directory and the worker uploads that file, never
 * reading the text on its main thread (docs/round-r/r2.md); a host naming any other file, or a
 * link, or one over `--max-result-size`, gets nothing uploaded. Real module hosts (shares
 * `test/module-hosts-spec.ts` with the `hosted-*.spec.ts` files), a store that is a directory
 * and the worker's real cache.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestFile } from '@mpd/client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { moduleHostsSpec } from '../../test/module-hosts-spec.js';
import { BlobCache } from '../artifacts/blob-cache.js';
import type { WorkerArtifacts } from './execution.js';
import { copyHostFile } from './scratch-file.js';
import { resultFilePath } from './result-file.js';

const { dir, executor, run, request, start } = moduleHostsSpec();

afterEach(() => {
  vi.restoreAllMocks();
});

/** A worker's artifacts over a store that is a directory (`<root>/store/<sha256>`): the paths it was asked to upload. */
async function directoryStore(name: string): Promise<{ artifacts: WorkerArtifacts; puts: string[]; store: string }> {
  const root = join(dir, name);
  const store = join(root, 'store');
  await mkdir(store, { recursive: true });
  const cache = new BlobCache({
    dir: join(root, 'cache'),
    maxBytes: 64 * 1024 * 1024,
    download: async (sha256, path) => {
      await copyFile(join(store, sha256), path);
      return { size: (await stat(path)).size };
    },
  });
  const puts: string[] = [];
  const copies = join(root, 'copies');
  await mkdir(copies, { recursive: true });
  const artifacts: WorkerArtifacts = {
    transport: {
      put: async (path) => {
        puts.push(path);
        const digest = await digestFile(path);
        await copyFile(path, join(store, digest.sha256));
        await cache.add(digest, path);
        return digest;
      },
      // As WorkerBlobs: a copy of exactly the bytes checked, made where no host is given a directory.
      putOpened: async (handle, size) => {
        const copy = await copyHostFile(handle, size, copies, 'result');
        puts.push(copy.path);
        await copyFile(copy.path, join(store, copy.digest.sha256));
        await cache.add(copy.digest, copy.path);
        await rm(copy.path);
        return copy.digest;
      },
      checkOut: (sha256) => cache.checkOut(sha256),
      follow: (sha256, follower, signal) => cache.follow(sha256, follower, signal),
    },
    scratchDir: join(root, 'cache', '.scratch'),
  };
  return { artifacts, puts, store };
}

describe('a module host result that goes by reference', () => {
  it("is written by the host to its execution's file and uploaded from there: the worker's main thread parses no line of its size, the answer is the reference, the file is removed", async () => {
    const { artifacts, puts, store } = await directoryStore('by-file');
    const on = executor({ slots: 1, artifacts });
    // 8 MB: 32 times the default --inline-result-size (256 KiB).
    const length = 8_000_000;
    const text = JSON.stringify('x'.repeat(length));
    const sha256 = createHash('sha256').update(text).digest('hex');
    // Every JSON text this process parses while the result goes by: the host channel's lines
    // (MessageLines), the answer's. Before, the host's `done` carried the text: an 8 MB line.
    let longestParsed = 0;
    const parse = JSON.parse;
    vi.spyOn(JSON, 'parse').mockImplementation((source: string, reviver?: Parameters<typeof JSON.parse>[1]) => {
      longestParsed = Math.max(longestParsed, String(source).length);
      return parse(source, reviver);
    });
    const sent = request('big-result', { params: { length } });
    const outcome = await start(on, sent);
    vi.restoreAllMocks();
    expect(outcome.status, JSON.stringify(outcome.body)).toBe(200);
    expect(outcome.body).toMatchObject({
      serializedResult: JSON.stringify({ $mpdRef: { sha256, size: text.length } }),
    });
    expect(longestParsed).toBeGreaterThan(0);
    expect(longestParsed).toBeLessThan(64 * 1024);
    // Uploaded from the worker's copy of the bytes it checked on the host's file (opened once), not by the host's path.
    expect(puts).toEqual([expect.stringMatching(/\/result\.[0-9a-f]{12}\.json$/)]);
    expect(readFileSync(join(store, sha256), 'utf8')).toBe(text);
    expect(readdirSync(artifacts.scratchDir)).toEqual([]);
    // A result within the size still goes inline, through the channel.
    await on.idle();
    const small = await run(on, 'big-result', { params: { length: 1_000 } });
    expect(small.body).toMatchObject({ serializedResult: JSON.stringify('x'.repeat(1_000)) });
    expect(puts).toHaveLength(1);
  }, 30_000);

  it("a host's done naming a file outside its scratch directory (/etc/shadow), another execution's file, its own file made a link to a file of the worker, or its own file over --max-result-size: nothing is uploaded, the module fails naming why", async () => {
    const { artifacts, puts } = await directoryStore('forged');
    // Two hosts: one takes the next module while the other, stopped, is replaced.
    const on = executor({ slots: 2, artifacts, maxResultBytes: 1024 * 1024 });
    const secret = join(dir, 'worker-secret.key');
    await writeFile(secret, '"the worker\'s key"');
    const other = resultFilePath(artifacts.scratchDir, 'exec-another-one');
    await mkdir(artifacts.scratchDir, { recursive: true });
    await writeFile(other, '"another execution\'s result"');
    const brokenChannel = (why: string) =>
      new RegExp(
        `^Module 'forged-result-file' crashed its module host: it wrote a line that is not a message on its channel with the worker \\(fd 3\\): ${why}$`,
      );
    const notItsFile = brokenChannel(
      "a done message whose resultFile is not its execution's result file in the module host's scratch directory",
    );
    // Each kind once here (a host each); every kind of path in host-message-check.spec.ts.
    for (const resultFile of ['/etc/shadow', other]) {
      const outcome = await run(on, 'forged-result-file', { params: { resultFile } });
      await on.idle();
      expect(outcome.body, resultFile).toMatchObject({
        success: false,
        errorMessage: expect.stringMatching(notItsFile),
      });
    }
    // Its own file's name, made a link to the worker's key: passes the path check, not uploaded.
    const linked = request('forged-result-file');
    const own = resultFilePath(artifacts.scratchDir, linked.executionId);
    const link = await start(on, { ...linked, params: { resultFile: own, linkTo: secret } });
    await on.idle();
    expect(link.body).toMatchObject({
      success: false,
      exceptionType: 'ResultReferenceError',
      errorMessage:
        "Module 'forged-result-file' ended with a result file that is not a regular file of its own (a link, or another file linked in its place): not uploaded",
    });
    // Its own file, over the worker's --max-result-size (1 MiB here): refused by its size, with
    // the message the host gives a result over it.
    const large = request('forged-result-file');
    const tooLarge = await start(on, {
      ...large,
      params: { resultFile: resultFilePath(artifacts.scratchDir, large.executionId), bytes: 2 * 1024 * 1024 },
    });
    expect(tooLarge.body).toMatchObject({
      success: false,
      exceptionType: 'ResultLimitError',
      errorMessage:
        "Module 'forged-result-file' returned a result of 2 MiB (2,097,152 bytes) as JSON, over the limit of 1 MiB (1,048,576 bytes): the worker's --max-result-size (maxResultBytes) sets the limit; return less, or keep large data elsewhere (a file, an artifact store) and return where it is",
    });
    expect(puts).toEqual([]);
    // The link and the large file are removed; the other execution's file and the key are as they were.
    expect(readdirSync(artifacts.scratchDir)).toEqual([other.slice(artifacts.scratchDir.length + 1)]);
    expect(readFileSync(secret, 'utf8')).toBe('"the worker\'s key"');
  }, 60_000);

  it("a host's own result file path holding a directory, a FIFO, or a file of two links: the module fails naming why, nothing is uploaded, the worker answers and runs the next module", async () => {
    const { artifacts, puts } = await directoryStore('not-a-file');
    const on = executor({ slots: 1, artifacts });
    const kinds: Array<Record<string, boolean | number | string>> = [
      { directory: true },
      { fifo: true },
      { bytes: 1000, alsoAt: join(dir, 'not-a-file', 'also.json') },
    ];
    for (const kind of kinds) {
      const sent = request('forged-result-file');
      const resultFile = resultFilePath(artifacts.scratchDir, sent.executionId);
      // Before: removing a directory threw EISDIR, the execution's run rejected and nothing
      // answered; opening a FIFO by its path waits for a writer.
      const outcome = await Promise.race([
        start(on, { ...sent, params: { resultFile, ...kind } }),
        new Promise<'no answer'>((resolve) => setTimeout(() => resolve('no answer'), 20_000)),
      ]);
      expect(outcome, JSON.stringify(kind)).not.toBe('no answer');
      expect((outcome as Exclude<typeof outcome, string>).body, JSON.stringify(kind)).toMatchObject({
        success: false,
        exceptionType: 'ResultReferenceError',
        errorMessage:
          "Module 'forged-result-file' ended with a result file that is not a regular file of its own (a link, or another file linked in its place): not uploaded",
      });
      await on.idle();
    }
    expect(puts).toEqual([]);
    expect(readdirSync(artifacts.scratchDir)).toEqual([]);
    // The slot is free again: the next module runs.
    const next = await run(on, 'big-result', { params: { length: 10 } });
    expect(next.body).toMatchObject({ success: true, serializedResult: JSON.stringify('x'.repeat(10)) });
  }, 90_000);
});
