import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/** Bytes queued for one write at most (fs's own streams batch what is queued into one `writev`). */
const WRITE_BATCH_BYTES = 1024 * 1024;

/**
 * A file written through `handle` that reports its length after each write (`writev` of what is
 * queued, up to 1 MiB, as fs's own write streams batch): a reader of the file (a consumer of a
 * download as the cache writes it; the worker uploading an archive as its module host packs it)
 * may read up to the reported length. Does not close `handle`: its opener does.
 */
export class ReportingFileWriter extends Writable {
  private bytes = 0;
  constructor(
    private readonly handle: FileHandle,
    private readonly report: (bytes: number) => void,
  ) {
    super({ highWaterMark: WRITE_BATCH_BYTES });
  }
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    const buffers = chunks.map(({ chunk }) => chunk);
    this.handle.writev(buffers).then(({ bytesWritten }) => {
      this.bytes += bytesWritten;
      this.report(this.bytes);
      callback();
    }, callback);
  }
}
