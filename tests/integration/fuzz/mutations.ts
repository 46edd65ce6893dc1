/** Mutations of a valid body: a field dropped, replaced, wrapped, flipped to another type, or one added. */
import fc from 'fast-check';
import { clone, isPlainObject, objectOf, weirdKey, weirdValue } from './values.js';

export type Mutation =
  | { op: 'delete' | 'wrap' | 'flip'; at: number }
  | { op: 'replace'; at: number; value: unknown }
  | { op: 'add'; at: number; key: string; value: unknown };

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constantFrom('delete' as const, 'wrap' as const, 'flip' as const), at: fc.nat() }),
  { weight: 3, arbitrary: fc.record({ op: fc.constant('replace' as const), at: fc.nat(), value: weirdValue }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('add' as const), at: fc.nat(), key: weirdKey, value: weirdValue }),
  },
);

type Path = (string | number)[];

function pathsOf(value: unknown, path: Path = [], out: Path[] = []): Path[] {
  out.push(path);
  if (Array.isArray(value)) value.forEach((item, index) => pathsOf(item, [...path, index], out));
  else if (isPlainObject(value)) for (const key of Object.keys(value)) pathsOf(value[key], [...path, key], out);
  return out;
}

function getAt(root: unknown, path: Path): unknown {
  return path.reduce<unknown>((value, key) => (value as Record<string | number, unknown>)[key], root);
}

/** Returns the new root (a mutation at the root replaces it; `undefined`: no body at all). */
function setAt(root: unknown, path: Path, value: unknown, remove = false): unknown {
  if (path.length === 0) return remove ? undefined : value;
  const parent = getAt(root, path.slice(0, -1)) as Record<string | number, unknown> | unknown[];
  const key = path[path.length - 1]!;
  if (Array.isArray(parent)) {
    if (remove) parent.splice(key as number, 1);
    else parent[key as number] = value;
  } else if (remove) delete parent[key];
  else Object.defineProperty(parent, key, { value, enumerable: true, writable: true, configurable: true });
  return root;
}

function flip(value: unknown): unknown {
  if (typeof value === 'string') return value === '' ? 0 : Number.isNaN(Number(value)) ? [value] : Number(value);
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 0;
  if (value === null) return 'null';
  if (Array.isArray(value)) return objectOf(value.map((item, index) => [String(index), item]));
  if (isPlainObject(value)) return Object.values(value);
  return null;
}

export function mutate(body: unknown, mutations: readonly Mutation[]): unknown {
  let root = clone(body);
  for (const change of mutations) {
    const paths = pathsOf(root);
    const path = paths[change.at % paths.length]!;
    const target = getAt(root, path);
    switch (change.op) {
      case 'delete':
        root = setAt(root, path, undefined, true);
        break;
      case 'replace':
        root = setAt(root, path, clone(change.value));
        break;
      case 'wrap':
        root = setAt(root, path, change.at % 2 === 0 ? [target] : objectOf([['value', target]]));
        break;
      case 'flip':
        root = setAt(root, path, flip(target));
        break;
      case 'add':
        if (isPlainObject(target)) setAt(root, [...path, change.key], clone(change.value));
        else if (Array.isArray(target)) target.push(clone(change.value));
        else root = setAt(root, path, objectOf([[change.key, clone(change.value)]]));
        break;
    }
    if (root === undefined) break;
  }
  return root;
}
