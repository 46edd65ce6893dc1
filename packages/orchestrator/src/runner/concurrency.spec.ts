import { defineModule } from '@mpd/pipeline';
import { describe, expect, it } from 'vitest';
import { ConcurrencyRules, distinctKeys } from './concurrency.js';

const run = () => null;
const plain = defineModule({ name: 'plain', run });
const alone = defineModule({ name: 'alone', notInParallel: true, run });
const db1 = defineModule({ name: 'db1', notInParallel: ['db'], run });
const db2 = defineModule({ name: 'db2', notInParallel: ['db', 'db'], run });
const farm1 = defineModule({ name: 'farm1', parallelLimit: { key: 'farm', limit: 2 }, run });
const farm2 = defineModule({ name: 'farm2', parallelLimit: { key: 'farm', limit: 2 }, run });
const farm3 = defineModule({ name: 'farm3', parallelLimit: { key: 'farm', limit: 2 }, run });

describe('ConcurrencyRules', () => {
  it('keeps to the maximum parallelism', () => {
    const rules = new ConcurrencyRules(2);
    rules.started(plain);
    expect(rules.blocker(plain)).toBeUndefined();
    rules.started(farm1);
    expect(rules.blocker(plain)).toBe('max parallelism 2 reached');
    rules.ended(plain);
    expect(rules.running).toBe(1);
    expect(rules.blocker(plain)).toBeUndefined();
  });

  it('runs a notInParallel module alone', () => {
    const rules = new ConcurrencyRules(undefined);
    rules.started(plain);
    expect(rules.blocker(alone)).toBe('it runs alone');
    rules.ended(plain);
    rules.started(alone);
    expect(rules.blocker(plain)).toBe('a module that runs alone is running');
    rules.ended(alone);
    expect(rules.blocker(plain)).toBeUndefined();
  });

  it('names the first running holder of a notInParallel key, and frees the key when it ends', () => {
    const rules = new ConcurrencyRules(undefined);
    expect(rules.blocker(db2)).toBeUndefined();
    rules.started(db1);
    expect(rules.blocker(db2)).toBe("'db1' holds the notInParallel key 'db'");
    rules.started(db2); // e.g. started before the rule applied: both hold 'db'
    rules.ended(db1);
    expect(rules.blocker(db1)).toBe("'db2' holds the notInParallel key 'db'");
    rules.ended(db2);
    expect(rules.blocker(db1)).toBeUndefined();
  });

  it('keeps to a parallelLimit', () => {
    const rules = new ConcurrencyRules(undefined);
    rules.started(farm1);
    rules.started(farm2);
    expect(rules.blocker(farm3)).toBe("parallelLimit 'farm' of 2 reached");
    expect(rules.blocker(plain)).toBeUndefined();
    rules.ended(farm1);
    expect(rules.blocker(farm3)).toBeUndefined();
  });
});

describe('distinctKeys', () => {
  it('gives no key or one key as it is (no Set), and more keys without repeats, in order', () => {
    const none: string[] = [];
    const one = ['db'];
    expect(distinctKeys(none)).toBe(none);
    expect(distinctKeys(one)).toBe(one);
    expect([...distinctKeys(['db', 'db'])]).toEqual(['db']);
    expect([...distinctKeys(['b', 'a', 'b', 'c'])]).toEqual(['b', 'a', 'c']);
  });

  it('frees a key held twice by one running module after it ends', () => {
    const rules = new ConcurrencyRules(undefined);
    rules.started(db2);
    rules.ended(db2);
    expect(rules.blocker(db1)).toBeUndefined();
  });
});
