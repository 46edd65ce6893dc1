import type { ZodError } from 'zod';
import type { FieldIssue } from './common.schema.js';
import { LIMITS } from './limits.js';

/**
 * Turns a zod error into field issues whose `field` is the dotted path of the
 * offending value under `prefix` (e.g. `body.workerNode.capabilities.os`): the first `max` of
 * them (an answer carries no more than {@link LIMITS}`.errorAnswer.maxIssues`; a body of a
 * million bad entries has a million issues, and mapping them all costs as much as the answer did).
 */
export function toFieldIssues(error: ZodError, prefix: string, max = Number.POSITIVE_INFINITY): FieldIssue[] {
  const issues = error.issues.length > max ? error.issues.slice(0, max) : error.issues;
  return issues.map((issue) => ({
    field: [prefix, ...issue.path].filter((part) => part !== '').join('.'),
    message: issue.message,
  }));
}

/**
 * One line naming the fields at fault: `body.currentLoad: Expected number, received string`,
 * as many as fit in `maxLength` characters (the first one cut if need be), then `; and 12 more
 * issues` for the ones not named (`omitted` of them were left out by the caller already).
 */
export function describeFieldIssues(
  issues: readonly FieldIssue[],
  omitted = 0,
  maxLength: number = LIMITS.errorAnswer.maxMessageLength,
): string {
  const room = maxLength - 32; // for "; and 1234567890 more issues"
  const named: string[] = [];
  let length = 0;
  for (const issue of issues) {
    const text = `${issue.field}: ${issue.message}`;
    const next = length + (named.length > 0 ? 2 : 0) + text.length;
    if (next > room) {
      if (named.length === 0) named.push(truncateText(text, room));
      break;
    }
    named.push(text);
    length = next;
  }
  const described = named.join('; ');
  const more = omitted + issues.length - named.length;
  if (more <= 0) return described;
  const tail = `and ${more} more issue${more === 1 ? '' : 's'}`;
  return described === '' ? tail : `${described}; ${tail}`;
}

/**
 * `text` cut to at most `maxLength` characters, ending in `…` when cut (and never in half a
 * surrogate pair). Zod's messages may quote what the request sent, and field names hold its keys.
 */
export function truncateText(text: string, maxLength: number): string {
  if (text.length <= maxLength) return text;
  let end = Math.max(0, maxLength - 1);
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…`;
}

/**
 * The issues an error answer carries: the first {@link LIMITS}`.errorAnswer.maxIssues`, each
 * field name and message cut to `maxTextLength`; `omitted` counts the others (plus `omitted`
 * already left out by the caller).
 */
export function capFieldIssues(issues: readonly FieldIssue[], omitted = 0): { issues: FieldIssue[]; omitted: number } {
  const { maxIssues, maxTextLength } = LIMITS.errorAnswer;
  const kept = issues.slice(0, maxIssues).map((issue) => ({
    field: truncateText(issue.field, maxTextLength),
    message: truncateText(issue.message, maxTextLength),
  }));
  return { issues: kept, omitted: omitted + Math.max(0, issues.length - maxIssues) };
}
