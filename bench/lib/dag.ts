/**
 * The benchmark pipelines' shapes, shared by the pipeline file (loaded by the orchestrator and
 * the workers) and by the driver (which needs the same DAG to compute lower bounds).
 */
import { seededRandom } from './stats.js';

export type Shape = 'wide' | 'chain' | 'random';

export interface DagSpec {
  shape: Shape;
  /** Number of modules. */
  size: number;
  /** Seed of the random shape and durations. */
  seed: number;
  /** Each module sleeps between these (ms); 0/0 makes no-op modules. */
  minMs: number;
  maxMs: number;
}

export interface DagNode {
  name: string;
  dependsOn: string[];
  /** How long the module sleeps (ms); 0 for a no-op. */
  sleepMs: number;
}

/** `m00042`: names sort in creation order. */
export const moduleName = (index: number): string => `m${String(index).padStart(5, '0')}`;

/** How far back a random module's dependencies may be. */
const WINDOW = 80;

/**
 * The modules of a benchmark pipeline, each after its dependencies:
 * - `wide`: `size` independent modules;
 * - `chain`: each module depends on the one before;
 * - `random`: each module depends on 0-3 earlier modules picked from a sliding window of the
 *   previous 80 (the first modules are roots). With 300 modules of 20-200 ms on 16 slots, its
 *   critical path and its total work / slots are close, so neither bound is slack and the order
 *   in which ready modules start matters.
 */
export function buildDag(spec: DagSpec): DagNode[] {
  const random = seededRandom(spec.seed);
  const nodes: DagNode[] = [];
  for (let index = 0; index < spec.size; index++) {
    const dependsOn: string[] = [];
    if (spec.shape === 'chain' && index > 0) dependsOn.push(moduleName(index - 1));
    if (spec.shape === 'random' && index > 0) {
      const count = Math.floor(random() * 4); // 0..3
      const window = Math.min(index, WINDOW);
      for (let pick = 0; pick < count; pick++) {
        const dependency = moduleName(index - 1 - Math.floor(random() * window));
        if (!dependsOn.includes(dependency)) dependsOn.push(dependency);
      }
    }
    const sleepMs = spec.maxMs <= 0 ? 0 : spec.minMs + Math.floor(random() * (spec.maxMs - spec.minMs + 1));
    nodes.push({ name: moduleName(index), dependsOn, sleepMs });
  }
  return nodes;
}

/** The longest path through the DAG, summing durations (ms). */
export function criticalPathMs(nodes: readonly DagNode[]): number {
  const finish = new Map<string, number>();
  let longest = 0;
  for (const node of nodes) {
    let start = 0;
    for (const dependency of node.dependsOn) start = Math.max(start, finish.get(dependency)!);
    const end = start + node.sleepMs;
    finish.set(node.name, end);
    longest = Math.max(longest, end);
  }
  return longest;
}

/**
 * The makespan of an ideal list schedule on `slots` identical slots with zero overhead: whenever
 * a slot is free, the first ready module in `rank` order starts. Shows how much of a measured
 * makespan is the placement policy and how much is overhead.
 */
export function simulateListSchedule(
  nodes: readonly DagNode[],
  slots: number,
  rank: (a: DagNode, b: DagNode) => number,
): number {
  const byName = new Map(nodes.map((node) => [node.name, node]));
  const pending = new Map(nodes.map((node) => [node.name, node.dependsOn.length]));
  const dependants = new Map<string, string[]>(nodes.map((node) => [node.name, []]));
  for (const node of nodes) for (const dependency of node.dependsOn) dependants.get(dependency)!.push(node.name);
  let ready = nodes.filter((node) => node.dependsOn.length === 0);
  const running: { end: number; node: DagNode }[] = [];
  let now = 0;
  let done = 0;
  while (done < nodes.length) {
    ready.sort(rank);
    while (running.length < slots && ready.length > 0) {
      const node = ready.shift()!;
      running.push({ end: now + node.sleepMs, node });
    }
    running.sort((a, b) => a.end - b.end);
    const next = running.shift()!;
    now = next.end;
    const finished = [next, ...running.filter((entry) => entry.end === now)];
    running.splice(0, finished.length - 1);
    for (const entry of finished) {
      done++;
      for (const dependant of dependants.get(entry.node.name)!) {
        const left = pending.get(dependant)! - 1;
        pending.set(dependant, left);
        if (left === 0) ready.push(byName.get(dependant)!);
      }
    }
  }
  return now;
}

/** Each module's longest path to the end of the DAG (its own duration included), ms. */
export function bottomLevels(nodes: readonly DagNode[]): Map<string, number> {
  const dependants = new Map<string, string[]>(nodes.map((node) => [node.name, []]));
  for (const node of nodes) for (const dependency of node.dependsOn) dependants.get(dependency)!.push(node.name);
  const level = new Map<string, number>();
  for (let index = nodes.length - 1; index >= 0; index--) {
    const node = nodes[index]!;
    let after = 0;
    for (const dependant of dependants.get(node.name)!) after = Math.max(after, level.get(dependant)!);
    level.set(node.name, node.sleepMs + after);
  }
  return level;
}

/** The spec in environment variables, for the processes that load the pipeline file. */
export function dagEnv(spec: DagSpec): Record<string, string> {
  return {
    MPD_BENCH_SHAPE: spec.shape,
    MPD_BENCH_SIZE: String(spec.size),
    MPD_BENCH_SEED: String(spec.seed),
    MPD_BENCH_MIN_MS: String(spec.minMs),
    MPD_BENCH_MAX_MS: String(spec.maxMs),
  };
}

export function dagSpecFromEnv(env: NodeJS.ProcessEnv = process.env): DagSpec {
  const shape = (env.MPD_BENCH_SHAPE ?? 'wide') as Shape;
  if (!['wide', 'chain', 'random'].includes(shape)) throw new Error(`MPD_BENCH_SHAPE: unknown shape ${shape}`);
  return {
    shape,
    size: Number(env.MPD_BENCH_SIZE ?? 100),
    seed: Number(env.MPD_BENCH_SEED ?? 1),
    minMs: Number(env.MPD_BENCH_MIN_MS ?? 0),
    maxMs: Number(env.MPD_BENCH_MAX_MS ?? 0),
  };
}
