/*
 * Both walks below keep their own stack instead of recursing: what they walk came over the wire,
 * and no call stack should be what bounds how deeply it may nest (the schemas bound these values
 * today; the walks do not rely on it).
 */

/** Freezes a JSON value and everything in it. */
export function deepFreeze<T>(value: T): T {
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const current = pending.pop();
    if (typeof current !== 'object' || current === null || Object.isFrozen(current)) continue;
    Object.freeze(current);
    for (const child of Object.values(current)) pending.push(child);
  }
  return value;
}

/**
 * A deep copy of a JSON value (what registrations hold after validation): much cheaper than
 * `structuredClone` for these small objects, which every heartbeat and listing copies.
 */
export function copyJson<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  const root = emptyLike(value);
  // Pairs of a container and its copy whose children are still to copy.
  const pending: [object, Record<string, unknown> | unknown[]][] = [[value, root]];
  while (pending.length > 0) {
    const [source, copy] = pending.pop()!;
    if (Array.isArray(source)) {
      for (let index = 0; index < source.length; index++) {
        (copy as unknown[])[index] = copyChild(source[index], pending);
      }
      continue;
    }
    for (const key of Object.keys(source)) {
      const child = copyChild((source as Record<string, unknown>)[key], pending);
      // An own `__proto__` key (JSON.parse makes one) stays a key, as structuredClone keeps it.
      if (key === '__proto__')
        Object.defineProperty(copy, key, { value: child, enumerable: true, writable: true, configurable: true });
      else (copy as Record<string, unknown>)[key] = child;
    }
  }
  return root as T;
}

/** A primitive as it is; a container as an empty copy, queued to be filled. */
function copyChild(child: unknown, pending: [object, Record<string, unknown> | unknown[]][]): unknown {
  if (typeof child !== 'object' || child === null) return child;
  const copy = emptyLike(child);
  pending.push([child, copy]);
  return copy;
}

function emptyLike(value: object): Record<string, unknown> | unknown[] {
  return Array.isArray(value) ? new Array<unknown>(value.length) : {};
}
