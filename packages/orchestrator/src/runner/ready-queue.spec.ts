import { type AnyModule, defineModule, definePipeline } from '@mpd/pipeline';
import { describe, expect, it } from 'vitest';
import { chainHeights } from './chain-heights.js';
import { createModuleStates, type ModuleState, requiresKeyOf } from './module-state.js';
import { ReadyQueue } from './ready-queue.js';

const run = () => null;

/** The states of a real pipeline's modules, by name. */
function statesOf(modules: AnyModule[]): Map<string, ModuleState> {
  const pipeline = definePipeline({ name: 'queue', modules });
  return createModuleStates(pipeline, chainHeights(pipeline));
}

function names(queue: ReadyQueue): string[] {
  const queued: string[] = [];
  for (let index = 0; index < queue.length; index++) queued.push(queue.at(index)!.name);
  return queued;
}

describe('ReadyQueue', () => {
  const low = defineModule({ name: 'low', priority: 'Low', run });
  const plain = defineModule({ name: 'plain', run });
  const chain = defineModule({ name: 'chain', run });
  const next = defineModule({ name: 'next', dependsOn: [chain], run });
  const high = defineModule({ name: 'high', priority: 'High', run });
  const later = defineModule({ name: 'later', run });
  const states = statesOf([low, plain, chain, next, high, later]);
  const state = (name: string) => states.get(name)!;

  it('orders by priority, then the remaining work a module heads, then pipeline order', () => {
    const queue = new ReadyQueue();
    for (const name of ['later', 'low', 'plain', 'high', 'chain', 'next']) queue.enter(state(name));
    // chain heads next (height 2); plain, next and later head only themselves: pipeline order.
    expect(names(queue)).toEqual(['high', 'chain', 'plain', 'next', 'later', 'low']);
    expect(queue.at(6)).toBeUndefined();
  });

  it('leaves from anywhere in the queue, and ignores a module that is not in it', () => {
    const queue = new ReadyQueue();
    for (const name of ['low', 'plain', 'high', 'later']) queue.enter(state(name));
    queue.leave(state('plain'));
    queue.leave(state('chain'));
    expect(names(queue)).toEqual(['high', 'later', 'low']);
    queue.leave(state('high'));
    queue.leave(state('low'));
    expect(names(queue)).toEqual(['later']);
  });

  it('defers modules that enter during a walk until it ends, and lets them leave from the deferred list', () => {
    const queue = new ReadyQueue();
    queue.enter(state('plain'));
    queue.enter(state('low'));
    const seen: string[][] = [];
    queue.walk(() => {
      expect(queue.walking).toBe(true);
      queue.enter(state('high'));
      queue.enter(state('later'));
      seen.push(names(queue));
      queue.leave(state('later'));
      queue.leave(state('plain'));
      seen.push(names(queue));
    });
    expect(seen).toEqual([['plain', 'low'], ['low']]);
    expect(queue.walking).toBe(false);
    expect(names(queue)).toEqual(['high', 'low']);
  });

  it('counts the queued modules per set of requirements', () => {
    const gpu = { tags: ['gpu'] };
    const modules = statesOf([
      defineModule({ name: 'train', requires: gpu, run }),
      defineModule({ name: 'render', requires: gpu, run }),
      defineModule({ name: 'lint', run }),
      defineModule({ name: 'sign', requires: { os: ['windows'] }, run }),
    ]);
    const gpuKey = requiresKeyOf(gpu);
    const queue = new ReadyQueue();
    for (const each of modules.values()) queue.enter(each);
    expect(queue.countOf(gpuKey)).toBe(2);
    expect(queue.countOf('')).toBe(1);
    expect([...queue.requirements()]).toEqual([
      [gpuKey, gpu],
      ['', {}],
      [requiresKeyOf({ os: ['windows'] }), { os: ['windows'] }],
    ]);
    queue.leave(modules.get('train')!);
    expect(queue.countOf(gpuKey)).toBe(1);
    queue.leave(modules.get('render')!);
    queue.leave(modules.get('sign')!);
    expect(queue.countOf(gpuKey)).toBe(0);
    expect([...queue.requirements()].map(([key]) => key)).toEqual(['']);
  });

  it('remembers since when a module could not be placed, until it can be or leaves', () => {
    const queue = new ReadyQueue();
    queue.enter(state('plain'));
    expect(queue.hasUnplaceable).toBe(false);
    expect(queue.unplaceable(state('plain'), 1_000)).toBe(1_000);
    expect(queue.unplaceable(state('plain'), 5_000)).toBe(1_000);
    expect(queue.hasUnplaceable).toBe(true);
    queue.placeable(state('plain'));
    expect(queue.hasUnplaceable).toBe(false);
    expect(queue.unplaceable(state('plain'), 6_000)).toBe(6_000);
    queue.leave(state('plain'));
    expect(queue.hasUnplaceable).toBe(false);
  });
  it('keeps its order through many leaves at the front, in the middle and at the back, and entries before the first', () => {
    // A wide run's shape: hundreds queued, dispatched from the front, with modules entering
    // anywhere meanwhile (the queue reuses the slots its front left, and drops them in bulk).
    const many = Array.from({ length: 400 }, (_, index) =>
      defineModule({ name: `m${String(index).padStart(3, '0')}`, priority: index % 7 === 0 ? 'High' : 'Normal', run }),
    );
    const all = statesOf(many);
    const expected = (queued: Set<ModuleState>): string[] => {
      const model = new ReadyQueue();
      for (const each of queued) model.enter(each);
      return names(model);
    };
    const queue = new ReadyQueue();
    const queued = new Set<ModuleState>();
    const enter = (each: ModuleState) => {
      queue.enter(each);
      queued.add(each);
    };
    const leave = (each: ModuleState) => {
      queue.leave(each);
      queued.delete(each);
    };
    const states = [...all.values()];
    for (const each of states.slice(0, 300)) enter(each);
    let seed = 7;
    const random = (below: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed % below;
    };
    for (let step = 0; step < 2_000; step++) {
      const choice = random(10);
      if (choice < 5 && queue.length > 0) leave(queue.at(0)!);
      else if (choice < 7 && queue.length > 0) leave(queue.at(random(queue.length))!);
      else if (choice < 8 && queue.length > 0) leave(queue.at(queue.length - 1)!);
      else {
        const outside = states.filter((each) => !queued.has(each));
        if (outside.length > 0) enter(outside[random(outside.length)]!);
      }
      if (step % 50 === 0) {
        expect(names(queue)).toEqual(expected(queued));
        expect(queue.at(queue.length)).toBeUndefined();
        expect(queue.at(-1)).toBeUndefined();
      }
    }
    expect(names(queue)).toEqual(expected(queued));
    expect(queue.countOf('')).toBe(queued.size);
    for (const each of [...queued]) leave(each);
    expect(queue.length).toBe(0);
    expect(queue.at(0)).toBeUndefined();
    expect([...queue.requirements()]).toEqual([]);
  });

  it('keeps its spent slots at most max(64, its peak length), none holding a module that left', () => {
    // A wide run's churn: modules enter anywhere, most dispatches take the front, some end elsewhere.
    const priorities = ['Low', 'Normal', 'High'] as const;
    const all = [
      ...statesOf(
        Array.from({ length: 2_000 }, (_, index) =>
          defineModule({ name: `m${index}`, priority: priorities[index % 3], run }),
        ),
      ).values(),
    ];
    const queue = new ReadyQueue();
    const queued = new Set<ModuleState>();
    // A fixed pseudo-random sequence (a linear congruential generator): the same run every time.
    let seed = 3;
    const random = (below: number) => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) % below;
    let peak = 0;
    let fronts = 0;
    for (let step = 0; step < 30_000; step++) {
      const choice = random(10);
      if (choice < 5) {
        const state = all[random(all.length)]!;
        if (!queued.has(state)) {
          queue.enter(state);
          queued.add(state);
        }
      } else if (queue.length > 0) {
        const front = choice < 8;
        if (front) fronts++;
        const state = queue.at(front ? 0 : random(queue.length))!;
        queue.leave(state);
        queued.delete(state);
      }
      peak = Math.max(peak, queue.length);
      if (step % 25 === 0) {
        const spent = queue.spentSlots;
        expect(spent.length).toBeLessThanOrEqual(Math.max(64, peak));
        expect(spent.every((slot) => slot === undefined)).toBe(true);
      }
    }
    // The churn did go through many more front leaves than the bound.
    expect(fronts).toBeGreaterThan(4 * Math.max(64, peak));
    expect(queue.length).toBe(queued.size);
  });
});
