import type { ZodError } from 'zod';
import type { FieldIssue } from './common.schema.js';

/**
 * Turns a zod error into field issues whose `field` is the dotted path of the
 * offending value under `prefix` (e.g. `body.workerNode.capabilities.os`).
 */
export function toFieldIssues(error: ZodError, prefix: string): FieldIssue[] {
  return error.issues.map((issue) => ({
    field: [prefix, ...issue.path].filter((part) => part !== '').join('.'),
    message: issue.message,
  }));
}

/** One line naming every field at fault: `body.currentLoad: Expected number, received string`. */
export function describeFieldIssues(issues: readonly FieldIssue[]): string {
  return issues.map((issue) => `${issue.field}: ${issue.message}`).join('; ');
}
