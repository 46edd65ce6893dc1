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

/** A pipeline as the messages name it: its name and fingerprint. */
type NamedPipeline = Pick<Pipeline, 'name' | 'fingerprint'>;

/** The start of a fingerprint, as the CLI shows it (`sha256:0d5277b8e9ab…`). */
function shortFingerprint(fingerprint: string): string {
  return fingerprint.length > 19 ? `${fingerprint.slice(0, 19)}…` : fingerprint;
}

/**
 * Why `worker` cannot take any module of `pipeline`, whatever the module requires: it is
 * `Offline`, loaded no pipeline, another pipeline or another version of this one, is draining,
 * or is quarantined by the run (`quarantined`: the run's description of why); undefined when
 * it can.
 */
export function unfitReason(worker: WorkerNode, pipeline: NamedPipeline, quarantined?: string): string | undefined {
  if (worker.status === 'Offline') return `is Offline (last heartbeat ${worker.lastHeartbeat})`;
  const loaded = worker.pipeline;
  if (!loaded) return 'loaded no pipeline';
  if (loaded.name !== pipeline.name) return `loaded pipeline '${loaded.name}', not '${pipeline.name}'`;
  if (loaded.fingerprint !== pipeline.fingerprint) {
    return `loaded another version of pipeline '${pipeline.name}' (fingerprint ${shortFingerprint(loaded.fingerprint)}, this run's is ${shortFingerprint(pipeline.fingerprint)})`;
  }
  if (worker.status === 'Draining') return 'is draining';
  if (quarantined !== undefined) return `is ${quarantined}`;
  return undefined;
}

/**
 * Why no live worker can run a module of `pipeline` that needs `requires`, naming every
 * registered worker (`workers`) and why it does not fit: what each live worker of the pipeline
 * lacks, and for the others, {@link unfitReason} (`quarantined` tells which the run
 * quarantined, and why).
 */
export function noCapableWorkerReason(
  pipeline: NamedPipeline,
  requires: ModuleRequirements,
  workers: readonly WorkerNode[],
  quarantined: (workerId: string) => string | undefined = () => undefined,
): string {
  const fit: WorkerNode[] = [];
  const unfit: string[] = [];
  for (const worker of workers) {
    const why = unfitReason(worker, pipeline, quarantined(worker.id));
    if (why === undefined) fit.push(worker);
    else unfit.push(`${worker.id} ${why}`);
  }
  if (fit.length === 0) {
    const none = `no live worker with pipeline '${pipeline.name}' (fingerprint ${pipeline.fingerprint}) was registered`;
    return unfit.length === 0 ? none : `${none}: ${unfit.join('; ')}`;
  }
  const lacking = fit.map((worker) => `${worker.id} lacks ${missingCapabilities(worker, requires).join(', ')}`);
  return `it needs ${describeRequirements(requires)}, and no live worker has it: ${[...lacking, ...unfit].join('; ')}`;
}

/**
 * What a module of `pipeline` that needs `requires` asks of a worker:
 * `pipeline 'ci' (fingerprint sha256:…), tag 'gpu'` (the pipeline, with its whole fingerprint,
 * then each requirement of {@link describeRequirements}, if any).
 */
export function describeRequest(pipeline: NamedPipeline, requires: ModuleRequirements): string {
  const needs = describeRequirements(requires);
  const asked = `pipeline '${pipeline.name}' (fingerprint ${pipeline.fingerprint})`;
  return needs === 'nothing' ? asked : `${asked}, ${needs}`;
}

/**
 * Why a module of `pipeline` that needs `requires` fails at once, without waiting for a worker
 * (the run's `workerWaitMs` is 0; the CLI sets it so once its wait for workers ran out with none):
 * `no live worker can run it (it asks for …): ` and every registered worker (`workers`) with
 * why it does not fit ({@link unfitReason}, or what it lacks), or `no worker is registered`.
 */
export function noLiveWorkerCanRun(
  pipeline: NamedPipeline,
  requires: ModuleRequirements,
  workers: readonly WorkerNode[],
  quarantined: (workerId: string) => string | undefined = () => undefined,
): string {
  const each = workers.map((worker) => {
    const why = unfitReason(worker, pipeline, quarantined(worker.id));
    return `${worker.id} ${why ?? `lacks ${missingCapabilities(worker, requires).join(', ')}`}`;
  });
  const found = each.length > 0 ? each.join('; ') : 'no worker is registered';
  return `no live worker can run it (it asks for ${describeRequest(pipeline, requires)}): ${found}`;
}
