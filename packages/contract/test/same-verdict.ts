/** Test plumbing for the contract's hand checks (`bodyCheck`): not part of the package. */
import { expect } from 'vitest';
import type { z } from 'zod';
import type { BodyCheck } from '../src/body-check.js';

/**
 * Asserts that the hand check `check` takes or refuses `body` as `schema` does: the same data
 * when both take it, the same issues (so the same 400) when both refuse it.
 */
export function expectSameVerdict<S extends z.ZodTypeAny>(check: BodyCheck<S>, schema: S, body: unknown): void {
  const checked = check.safeParse(body);
  const parsed = schema.safeParse(body);
  expect(checked.success).toBe(parsed.success);
  if (checked.success && parsed.success) expect(checked.data).toStrictEqual(parsed.data); // the same prototypes too
  if (!checked.success && !parsed.success) expect(checked.error.issues).toEqual(parsed.error.issues);
}
