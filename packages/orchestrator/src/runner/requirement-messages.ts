/** The texts of module requirements: what a worker lacks, what a module needs, why none can take it. */
import type { WorkerNode } from '@mpd/contract';
import type { ModuleRequirements, Pipeline } from '@mpd/pipeline';

/** What `worker` lacks to meet `requires`: empty when it can run the module. */
export function missingCapabilities(worker: WorkerNode, requires: ModuleRequirements): string[] {
  const missing: string[] = [];
  const { os, installedTools, tags } = worker.capabilities;
  if (requires.os && requires.os.length > 0 && !requires.os.includes(os)) {
    missing.push(
      `os ${requires.os.length === 1 ? `'${requires.os[0]}'` : `one of [${requires.os.join(', ')}]`} (has '${os}')`,
    );
  }
  for (const tool of requires.tools ?? []) if (!installedTools.includes(tool)) missing.push(`tool '${tool}'`);
  for (const tag of requires.tags ?? []) if (!tags.includes(tag)) missing.push(`tag '${tag}'`);
  return missing;
}

/** `os one of [linux, macos], tool 'docker', tag 'gpu'`, or `nothing`. */
export function describeRequirements(requires: ModuleRequirements): string {
  const parts = [
    ...(requires.os && requires.os.length > 0 ? [`os one of [${requires.os.join(', ')}]`] : []),
    ...(requires.tools ?? []).map((tool) => `tool '${tool}'`),
    ...(requires.tags ?? []).map((tag) => `tag '${tag}'`),
  ];
  return parts.length > 0 ? parts.join(', ') : 'nothing';
}

/**
 * Why no live worker can run a module that needs `requires`: none of `pipeline` is registered,
 * or what each of the `live` ones lacks.
 */
export function noCapableWorkerReason(
  pipeline: Pick<Pipeline, 'name' | 'fingerprint'>,
  requires: ModuleRequirements,
  live: readonly WorkerNode[],
): string {
  return live.length === 0
    ? `no live worker with pipeline '${pipeline.name}' (fingerprint ${pipeline.fingerprint}) was registered`
    : `it needs ${describeRequirements(requires)}, and no live worker has it: ${live
        .map((worker) => `${worker.id} lacks ${missingCapabilities(worker, requires).join(', ')}`)
        .join('; ')}`;
}
