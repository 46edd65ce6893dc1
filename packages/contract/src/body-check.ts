import type { z } from 'zod';
import { LIMITS } from './limits.js';

/**
 * A request body's check as ts-rest calls it (`safeParse`), for a route where zod's parse costs
 * more than the route's work: {@link bodyCheck} builds one.
 */
export type BodyCheck<S extends z.ZodTypeAny> = Pick<S, 'safeParse'>;

/**
 * `schema`'s check with a hand-written fast path: a body `isPlain` accepts is taken as it came
 * (no copy: zod's parse rebuilds every object it checks); anything else goes through `schema`,
 * whose answer (its data, or its issues naming the fields at fault for the 400) is the one given.
 * `isPlain` must accept only what `schema` accepts unchanged (no key it would strip, no default
 * it would fill in): each use keeps a spec that holds the two together on many bodies.
 */
export function bodyCheck<S extends z.ZodTypeAny>(schema: S, isPlain: (data: unknown) => boolean): BodyCheck<S> {
  return {
    safeParse(data: unknown) {
      if (isPlain(data)) return { success: true, data: data as z.infer<S> };
      return schema.safeParse(data);
    },
  } as BodyCheck<S>;
}

/**
 * Whether `value` is an object as `JSON.parse` gives one: its prototype `Object.prototype` (not
 * null, not an array, a `Map`, a `Date` or a class's instance, which zod refuses or copies into a
 * plain object; nor an object with a null prototype, which zod copies too, so that the data a
 * fast path gives is zod's). Its inherited properties are then `Object.prototype`'s, which zod's
 * `z.object` reads no field from.
 */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

/** How many own enumerable keys `object` has (without the array `Object.keys` would make). */
export function ownKeyCount(object: object): number {
  let keys = 0;
  for (const key in object) if (Object.hasOwn(object, key)) keys++;
  return keys;
}

/** Whether `value` is a string of 1 to `maxLength` characters that `pattern` matches. */
function isLimitedText(value: unknown, { maxLength, pattern }: { maxLength: number; pattern: RegExp }): boolean {
  return typeof value === 'string' && value.length > 0 && value.length <= maxLength && pattern.test(value);
}

/** Whether `value` is a worker id as `workerIdSchema` takes it ({@link LIMITS}`.workerId`). */
export function isWorkerId(value: unknown): boolean {
  return isLimitedText(value, LIMITS.workerId);
}

/** Whether `value` is an identifier as `identifierSchema` takes it ({@link LIMITS}`.identifier`). */
export function isIdentifier(value: unknown): boolean {
  return isLimitedText(value, LIMITS.identifier);
}
