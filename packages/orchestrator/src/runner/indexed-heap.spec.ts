import { describe, expect, it } from 'vitest';
import { IndexedHeap } from './indexed-heap.js';

interface Item {
  name: string;
  key: number;
  index: number;
}

const item = (name: string, key: number): Item => ({ name, key, index: -1 });
const byKey = (a: Item, b: Item): boolean => a.key < b.key || (a.key === b.key && a.name < b.name);

/** Empties the heap from the top, naming the items in the order they come out. */
function drain(heap: IndexedHeap<Item>): string[] {
  const names: string[] = [];
  for (let top = heap.peek(); top; top = heap.peek()) {
    names.push(top.name);
    heap.remove(top);
  }
  return names;
}

describe('IndexedHeap', () => {
  it('gives the first item by its order, whatever order items came in', () => {
    const heap = new IndexedHeap<Item>(byKey);
    const keys = [5, 3, 8, 1, 9, 2, 7, 3, 6, 4];
    keys.forEach((key, index) => heap.push(item(`i${index}`, key)));
    expect(heap.size).toBe(10);
    expect(drain(heap)).toEqual(['i3', 'i5', 'i1', 'i7', 'i9', 'i0', 'i8', 'i6', 'i2', 'i4']);
    expect(heap.size).toBe(0);
    expect(heap.peek()).toBeUndefined();
  });

  it('keeps each item’s index, takes an item out of the middle, and marks it out (-1)', () => {
    const heap = new IndexedHeap<Item>(byKey);
    const items = [1, 2, 3, 4, 5, 6].map((key) => item(`k${key}`, key));
    for (const each of items) heap.push(each);
    for (const each of items) expect(each.index).toBeGreaterThanOrEqual(0);
    heap.remove(items[1]!);
    heap.remove(items[4]!);
    expect(items[1]!.index).toBe(-1);
    expect(drain(heap)).toEqual(['k1', 'k3', 'k4', 'k6']);
  });

  it('moves an item whose key changed to its new place, up or down', () => {
    const heap = new IndexedHeap<Item>(byKey);
    const [a, b, c, d] = [item('a', 1), item('b', 2), item('c', 3), item('d', 4)];
    for (const each of [a, b, c, d]) heap.push(each);
    d.key = 0;
    heap.update(d);
    expect(heap.peek()).toBe(d);
    d.key = 10;
    heap.update(d);
    a.key = 5;
    heap.update(a);
    expect(drain(heap)).toEqual(['b', 'c', 'a', 'd']);
  });

  it('clears, marking every item out', () => {
    const heap = new IndexedHeap<Item>(byKey);
    const items = [item('x', 1), item('y', 2)];
    for (const each of items) heap.push(each);
    heap.clear();
    expect(heap.size).toBe(0);
    expect(items.map((each) => each.index)).toEqual([-1, -1]);
    heap.push(items[1]!);
    expect(heap.peek()).toBe(items[1]);
  });
});
