import {
  DEFAULT_WORKER_BODY_LIMIT_BYTES,
  describeBytes,
  type ExecuteModuleRequest,
  type WorkerNode,
} from '@mpd/contract';

/** Room for an execute request's keys, punctuation and short fields (ids, TimeSpan, timestamp). */
const REQUEST_OVERHEAD_BYTES = 4 * 1024;

/**
 * Why the execute request `body` cannot go to `worker`: larger than the body limit the worker
 * advertised (`capabilities.bodyLimitBytes`, its `--body-limit`; 100 MiB when it advertises
 * none), which would answer 413 without running anything. Undefined when it fits.
 *
 * Costs a sum of lengths for the usual request: the exact size (a `JSON.stringify` of the whole
 * request) is only measured when the request might be over the limit (each UTF-16 unit takes at
 * most 6 bytes of JSON, `\uXXXX`).
 */
export function executeRequestProblem(body: ExecuteModuleRequest, worker: WorkerNode): string | undefined {
  const limit = worker.capabilities.bodyLimitBytes ?? DEFAULT_WORKER_BODY_LIMIT_BYTES;
  let units = body.serializedModule.length + (body.workingDirectory?.length ?? 0);
  let entries = 0;
  for (const record of [body.dependencyResults ?? {}, body.environmentVariables ?? {}]) {
    for (const key in record) {
      units += key.length + record[key]!.length;
      entries++;
    }
  }
  for (const name of body.secretEnvironmentVariables ?? []) units += name.length;
  if (6 * units + 8 * entries + REQUEST_OVERHEAD_BYTES <= limit) return undefined;
  const bytes = Buffer.byteLength(JSON.stringify(body), 'utf8');
  if (bytes <= limit) return undefined;
  const results = Object.entries(body.dependencyResults ?? {})
    .map(([name, text]) => ({ name, bytes: Buffer.byteLength(text, 'utf8') }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, 3)
    .map(({ name, bytes: size }) => `'${name}' ${describeBytes(size)}`);
  const largest = results.length > 0 ? `; its largest dependency results: ${results.join(', ')}` : '';
  return `its execute request would be ${describeBytes(bytes)}, over the body limit of ${describeBytes(limit)} that worker ${worker.id} takes (its --body-limit)${largest}`;
}
