/** An item of an {@link IndexedHeap}: the heap keeps its place in `index`. */
export interface HeapItem {
  /** Its index in the heap; -1 while it is not in one. */
  index: number;
}

/**
 * A binary heap that knows where each of its items is (each item carries its `index`), so an
 * item whose key changed moves to its new place, or leaves, in O(log n) without a search.
 * The first item is the one `before` puts ahead of all others.
 */
export class IndexedHeap<T extends HeapItem> {
  readonly #items: T[] = [];

  /** `before(a, b)`: whether `a` comes out ahead of `b` (a strict order). */
  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.#items.length;
  }

  /** The first item, or undefined when the heap is empty. */
  peek(): T | undefined {
    return this.#items[0];
  }

  /** Adds an item that is not in the heap. */
  push(item: T): void {
    item.index = this.#items.length;
    this.#items.push(item);
    this.#up(item.index);
  }

  /** Takes an item that is in the heap out of it. */
  remove(item: T): void {
    const items = this.#items;
    const index = item.index;
    const last = items.pop()!;
    item.index = -1;
    if (last !== item) {
      items[index] = last;
      last.index = index;
      this.#up(index);
      this.#down(last.index);
    }
  }

  /** The key of an item in the heap changed: it moves to its new place. */
  update(item: T): void {
    this.#up(item.index);
    this.#down(item.index);
  }

  /** Empties the heap. */
  clear(): void {
    for (const item of this.#items) item.index = -1;
    this.#items.length = 0;
  }

  #swap(i: number, j: number): void {
    const items = this.#items;
    const a = items[i]!;
    const b = items[j]!;
    items[i] = b;
    items[j] = a;
    a.index = j;
    b.index = i;
  }

  #up(index: number): void {
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.before(this.#items[index]!, this.#items[parent]!)) return;
      this.#swap(index, parent);
      index = parent;
    }
  }

  #down(index: number): void {
    const items = this.#items;
    for (;;) {
      const left = index * 2 + 1;
      const right = left + 1;
      let first = index;
      if (left < items.length && this.before(items[left]!, items[first]!)) first = left;
      if (right < items.length && this.before(items[right]!, items[first]!)) first = right;
      if (first === index) return;
      this.#swap(index, first);
      index = first;
    }
  }
}
