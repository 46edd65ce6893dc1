import { PipelineDefinitionError, type PipelineDefinitionErrorCode, type PipelineMistake } from './errors.js';

/**
 * How many mistakes a {@link PipelineDefinitionError}'s message lists, a line each: a pipeline
 * of 10,000 modules that all depend on one missing module would print 10,000 lines otherwise.
 * Its `mistakes` hold every one.
 */
const LISTED_MISTAKES = 20;

/**
 * The mistakes found in one definition (`Pipeline 'ci'`, `Module 'build'`), thrown together once
 * all were looked for, as `tsc` lists every error of a program: one mistake throws its own code
 * and message (`Pipeline 'ci': two modules are named 'lint'`, as when each was thrown alone);
 * several throw one error of code `several`, `Pipeline 'ci' has 3 mistakes:` and a line per
 * mistake (the first {@link LISTED_MISTAKES}), with every one in its `mistakes`.
 */
export class Mistakes {
  private readonly found: { code: PipelineDefinitionErrorCode; detail: string; cause: unknown }[] = [];

  /**
   * @param subject what the messages start with: `Pipeline 'ci'`
   * @param several the code of an error that names several mistakes
   */
  constructor(
    private readonly subject: string,
    private readonly several: PipelineDefinitionErrorCode,
  ) {}

  /**
   * @param detail what is wrong, without the subject: `two modules are named 'lint'`
   * @param cause the error behind it, kept as the cause of an error of this mistake alone
   */
  add(code: PipelineDefinitionErrorCode, detail: string, cause?: unknown): void {
    this.found.push({ code, detail, cause });
  }

  /** @throws PipelineDefinitionError naming every mistake added, if any */
  throwIfAny(): void {
    const { found, subject } = this;
    if (found.length === 0) return;
    const mistakes: readonly PipelineMistake[] = Object.freeze(
      found.map(({ code, detail }) => Object.freeze({ code, message: `${subject}: ${detail}` })),
    );
    if (found.length === 1) {
      const [{ code, message }] = mistakes as [PipelineMistake];
      throw new PipelineDefinitionError(code, message, { mistakes, cause: found[0]!.cause });
    }
    const lines = found.slice(0, LISTED_MISTAKES).map(({ detail }) => `  - ${detail}`);
    if (found.length > LISTED_MISTAKES) {
      lines.push(`  … and ${found.length - LISTED_MISTAKES} more (the error's mistakes list them all)`);
    }
    throw new PipelineDefinitionError(this.several, [`${subject} has ${found.length} mistakes:`, ...lines].join('\n'), {
      mistakes,
    });
  }
}

/** How long the text of a value {@link shown} in a mistake may be, in characters, before it is cut. */
const SHOWN_CHARACTERS = 60;

/**
 * `value` as a mistake shows what was given (`timeoutMs must be …, got -5`, as the CLIs' settings
 * do): numbers as written (`NaN`, `-5`), `undefined`, `a function`, other values as JSON (`"db"`,
 * `{"key":"db","limit":0}`; one JSON cannot write: `an object`), cut at 60 characters with `…`.
 */
export function shown(value: unknown): string {
  if (typeof value === 'number' || value === undefined) return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    // a cycle, a BigInt inside
  }
  if (text === undefined) return typeof value === 'object' ? 'an object' : String(value);
  return text.length > SHOWN_CHARACTERS ? `${text.slice(0, SHOWN_CHARACTERS - 3)}…` : text;
}
