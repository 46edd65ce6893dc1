/**
 * Module hooks registered by loaded-packages-preload.mjs (`module.register`): appends the URL of
 * every module the process resolves, ES modules included (which `require.cache` never lists: our
 * own `.ts` sources, ts-rest, zod-openapi), one per line, to the file named in `initialize`'s
 * data. Written at once from the hooks' thread, so nothing is lost when the process exits.
 */
import { appendFileSync } from 'node:fs';

let file;

export function initialize(data) {
  file = data?.file;
}

export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  if (file && resolved.url.startsWith('file:')) appendFileSync(file, `${resolved.url}\n`);
  return resolved;
}
