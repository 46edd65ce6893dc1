/**
 * bench/progress-write.ts's baseline: packages/orchestrator/src/cli/progress.ts as it was before round Z
 * (commit 6dac049), its imports pointed at the package: off a terminal, a write per turn of the
 * event loop that printed (`setImmediate`). Not used by anything else.
 */
import { randomBytes } from 'node:crypto';
import type { OutputLine } from '@mpd/contract';
import { formatEvent, type RunEvent, TAIL_LINES } from '../../packages/orchestrator/src/runner/index.js';
import type { CiFlavour, OutputMode } from '../../packages/orchestrator/src/cli/output-modes.js';

/**
 * The most lines `grouped` holds for one attempt before it prints them as a section of their own
 * (the rest follow in another): the printer's memory stays bounded whatever a module writes.
 */
export const MAX_GROUPED_LINES = 10_000;

/** Options of {@link ProgressPrinter}. */
export interface ProgressPrinterOptions {
  out: NodeJS.WritableStream;
  /**
   * A terminal gets a status line, redrawn in place, of what runs where and for how long;
   * otherwise (CI logs) a plain line every `plainIntervalMs` while modules run.
   * @default out.isTTY
   */
  tty?: boolean;
  /** @default 30_000 */
  plainIntervalMs?: number;
  /** @default Date.now */
  now?: () => number;
  /** How the modules' output is printed (see `OUTPUT_MODES`). @default 'prefixed' */
  outputMode?: OutputMode;
  /** Whose log sections `grouped` writes. @default none: a `── module ──` header line */
  ci?: CiFlavour | undefined;
}

/** Live progress of a run: one line per event, and what is running now. */
export class ProgressPrinterBeforeZ {
  private readonly running = new Map<string, { workerId: string; since: number }>();
  private readonly tty: boolean;
  private readonly now: () => number;
  private footer = '';
  private lastPlain: number;
  private readonly timer: NodeJS.Timeout;
  /** `grouped`: each attempt's lines not printed yet, by `module#attempt`. */
  private readonly groups = new Map<string, { module: string; attempt: number; workerId: string; lines: string[] }>();
  /** The last lines of each module's latest attempt (for the summary). */
  private readonly tails = new Map<string, { attempt: number; lines: OutputLine[] }>();
  /**
   * Not a terminal: the text of this turn of the event loop, written in one piece at its end
   * (`setImmediate`) or at {@link stop}. A write to a pipe is synchronous on Linux: one per line
   * cost the orchestrator about 0.3 ms of CPU per module in a 1,000-module run (measured with
   * `--cpu-prof`, issue 14); one per turn costs one write for all the events the turn handled.
   */
  private pending = '';
  private flushScheduled = false;

  constructor(private readonly options: ProgressPrinterOptions) {
    this.tty = options.tty ?? Boolean((options.out as { isTTY?: boolean }).isTTY);
    this.now = options.now ?? Date.now;
    this.lastPlain = this.now();
    this.timer = setInterval(() => this.tick(), this.tty ? 500 : 1_000);
    this.timer.unref();
  }

  event(event: RunEvent): void {
    if (event.type === 'output') {
      this.output(event);
      return;
    }
    if (event.type === 'module-started')
      this.running.set(event.module, { workerId: event.workerId, since: this.now() });
    if (event.type === 'module-finished' || event.type === 'attempt-lost' || event.type === 'module-retrying') {
      this.running.delete(event.module);
    }
    this.line(formatEvent(event));
  }

  /** Redraws the status line (TTY), or prints what still runs every `plainIntervalMs` (plain). */
  tick(): void {
    if (this.tty) {
      this.drawFooter();
      return;
    }
    const now = this.now();
    if (this.running.size > 0 && now - this.lastPlain >= (this.options.plainIntervalMs ?? 30_000)) {
      this.lastPlain = now;
      this.write(`[mpd] … still running: ${this.describeRunning()}\n`);
    }
  }

  /** Stops redrawing and clears the status line; prints the sections of attempts whose log never closed. */
  stop(): void {
    clearInterval(this.timer);
    for (const key of [...this.groups.keys()]) this.printGroup(key);
    this.clearFooter();
    this.flush();
  }

  private write(text: string): void {
    if (this.tty) {
      this.options.out.write(text);
      return;
    }
    this.pending += text;
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (!this.pending) return;
    const text = this.pending;
    this.pending = '';
    this.options.out.write(text);
  }

  /**
   * The last lines (at most `TAIL_LINES`) of `module`'s latest attempt that wrote any, with its
   * number; undefined when it wrote none.
   */
  tailOf(module: string): { attempt: number; lines: readonly OutputLine[] } | undefined {
    return this.tails.get(module);
  }

  private output(event: Extract<RunEvent, { type: 'output' }>): void {
    const { module, attempt, lines } = event;
    if (lines.length > 0) {
      let tail = this.tails.get(module);
      if (!tail || tail.attempt < attempt) this.tails.set(module, (tail = { attempt, lines: [] }));
      if (tail.attempt === attempt) {
        tail.lines.push(...lines.slice(-TAIL_LINES));
        if (tail.lines.length > TAIL_LINES) tail.lines.splice(0, tail.lines.length - TAIL_LINES);
      }
    }
    const mode = this.options.outputMode ?? 'prefixed';
    if (mode === 'quiet') return;
    if (mode === 'prefixed') {
      if (lines.length > 0) this.line(formatEvent(event));
      return;
    }
    const key = `${module}#${attempt}`;
    let group = this.groups.get(key);
    if (!group) this.groups.set(key, (group = { module, attempt, workerId: event.workerId, lines: [] }));
    for (const line of lines) group.lines.push(line.text);
    if (event.closed || group.lines.length >= MAX_GROUPED_LINES) this.printGroup(key);
  }

  /** Prints an attempt's held lines as one section of the CI's log, and forgets them. */
  private printGroup(key: string): void {
    const group = this.groups.get(key);
    if (!group) return;
    this.groups.delete(key);
    if (group.lines.length === 0) return;
    const title = `${group.module}${group.attempt > 1 ? ` (attempt ${group.attempt})` : ''} on ${group.workerId}`;
    const out: string[] = [];
    if (this.options.ci === 'github-actions') {
      // A module's line that looks like a workflow command (`::add-mask::`, `::error::`) is not
      // run as one: GitHub stops reading commands until the token is written again.
      const token = randomBytes(8).toString('hex');
      out.push(`::group::${title}`, `::stop-commands::${token}`, ...group.lines, `::${token}::`, '::endgroup::');
    } else if (this.options.ci === 'buildkite') {
      out.push(`--- ${title}`, ...group.lines);
    } else {
      out.push(`── ${title} ──`, ...group.lines);
    }
    this.line(out.join('\n'));
  }

  private line(text: string): void {
    this.clearFooter();
    this.write(`${text}\n`);
    if (this.tty) this.drawFooter();
  }

  private describeRunning(): string {
    const now = this.now();
    return [...this.running]
      .map(([module, { workerId, since }]) => `${module} on ${workerId} (${((now - since) / 1000).toFixed(1)}s)`)
      .join(', ');
  }

  private drawFooter(): void {
    this.clearFooter();
    if (this.running.size === 0) return;
    this.footer = `⏳ ${this.running.size} running: ${this.describeRunning()}`;
    this.write(this.footer);
  }

  private clearFooter(): void {
    if (!this.footer) return;
    this.write('\r\x1b[K');
    this.footer = '';
  }
}
