/**
 * `--artifact-store`'s URL, `s3://bucket/prefix`: read here, with nothing else loaded, so the
 * CLI checks it before the server (and the AWS SDK) is loaded.
 */
import { redactUrl } from '@mpd/contract/redact-url';

/** A bucket name as S3 allows it (3–63 of `a-z 0-9 . -`, starting and ending with a letter or digit). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * The bucket and key prefix of an `s3://bucket/prefix` URL (the prefix without its slashes at
 * either end; empty when none).
 * @throws TypeError naming what is wrong (what it echoes of `text` without a user name, password
 *   or query: `redactUrl`)
 */
export function parseS3Url(text: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(text);
  if (!match) throw new TypeError(`must be s3://bucket or s3://bucket/prefix, got ${JSON.stringify(redactUrl(text))}`);
  const bucket = match[1]!;
  if (!BUCKET.test(bucket)) {
    throw new TypeError(
      `the bucket ${JSON.stringify(redactUrl(bucket))} is not a valid name: 3 to 63 of a-z, 0-9, '.' and '-'`,
    );
  }
  const prefix = (match[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix.split('/').some((segment) => segment === '..' || segment === '.')) {
    throw new TypeError(`the prefix ${JSON.stringify(redactUrl(prefix))} must not hold '.' or '..' segments`);
  }
  return { bucket, prefix };
}
