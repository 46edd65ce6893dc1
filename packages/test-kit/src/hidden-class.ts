import { setFlagsFromString } from 'node:v8';

/**
 * V8's `%HaveSameMap`: whether two objects have the same hidden class (map), for tests that pin
 * that an object made once per module keeps one shape from module to module. A site that sees a
 * new hidden class per module stays megamorphic and misses V8's inline caches at every module;
 * on Node 20 (V8 11.3) an object spread followed by more fields (`{ ...a, b }`) did that (issue
 * 14, round L). The natives syntax is switched on only while the check is compiled, at its first
 * use, and only when it was off (compiling it threw a SyntaxError): a process started with
 * `--allow-natives-syntax` keeps it on.
 */
let haveSameMap: ((a: object, b: object) => boolean) | undefined;

function compiled(): (a: object, b: object) => boolean {
  if (haveSameMap) return haveSameMap;
  // The natives syntax parses only in code compiled while the flag is on.
  const compile = () => new Function('a', 'b', 'return %HaveSameMap(a, b);') as (a: object, b: object) => boolean;
  try {
    haveSameMap = compile();
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    setFlagsFromString('--allow-natives-syntax');
    try {
      haveSameMap = compile();
    } finally {
      setFlagsFromString('--no-allow-natives-syntax');
    }
  }
  return haveSameMap;
}

/** Whether `a` and `b` have the same hidden class (V8's map). */
export function sameHiddenClass(a: object, b: object): boolean {
  return compiled()(a, b);
}

/**
 * Calls `make` `calls` times (20 by default: past the first calls, where V8's caches for the
 * site are still being set up) and says whether the objects of the last calls share one
 * hidden class: those of the 3rd call on must all have the first's of them.
 */
export function keepsOneHiddenClass(make: (call: number) => object, calls = 20): boolean {
  const made = Array.from({ length: calls }, (_, call) => make(call));
  return made.slice(3).every((object) => sameHiddenClass(made[2]!, object));
}
