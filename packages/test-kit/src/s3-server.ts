import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type RunningProcess, spawnProcess } from './processes.js';

/** The credentials the local S3-compatible server takes (s3rver's only key pair). */
export const S3_SERVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** A request the local S3-compatible server received, as its recording front recorded it. */
export interface S3Request {
  method: string;
  /** The path, without the query (`/bucket/prefix/sha256`). */
  path: string;
  /** The query, decoded (`X-Amz-Signature`, `X-Amz-SignedHeaders`, … for a presigned URL). */
  query: Record<string, string>;
  /** Every request header, names lowercase. */
  headers: Record<string, string | string[] | undefined>;
  /** How many body bytes it carried. */
  bodyBytes: number;
  /** The answer's status. */
  status: number;
}

/** A running local S3-compatible server. */
export interface S3Server {
  /** `http://127.0.0.1:PORT`: the endpoint (path-style URLs). */
  url: string;
  /** Where it keeps the buckets' objects (s3rver's file layout). */
  dir: string;
  /** The requests it answered so far, in order. */
  requests(): S3Request[];
  process: RunningProcess;
}

/**
 * Starts an S3-compatible server on 127.0.0.1 as a real process: `s3rver` (its file store under
 * `dir`, the buckets made), behind a recording front on its own port that logs each request's
 * method, path, headers and body size (see {@link S3Server.requests}). s3rver checks access key
 * ids and the expiry of presigned URLs (`X-Amz-Date` + `X-Amz-Expires`); it does **not** verify
 * SigV4 signatures or `x-amz-checksum-sha256`. Stop it with {@link killLeftovers} (or its process).
 */
export async function startS3Server(options: { dir: string; buckets: string[] }): Promise<S3Server> {
  const script = fileURLToPath(new URL('./s3-server-process.ts', import.meta.url));
  const log = join(options.dir, 'requests.jsonl');
  const proc = spawnProcess({
    script,
    args: [join(options.dir, 'data'), log, ...options.buckets],
    cwd: fileURLToPath(new URL('..', import.meta.url)),
  });
  const url = await proc.listeningUrl();
  return {
    url,
    dir: join(options.dir, 'data'),
    process: proc,
    requests: () =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((line) => JSON.parse(line) as S3Request)
        : [],
  };
}
