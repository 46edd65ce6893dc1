import { formatEvent, type RunEvent } from '../runner/index.js';

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
}

/** Live progress of a run: one line per event, and what is running now. */
export class ProgressPrinter {
  private readonly running = new Map<string, { workerId: string; since: number }>();
  private readonly tty: boolean;
  private readonly now: () => number;
  private footer = '';
  private lastPlain: number;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: ProgressPrinterOptions) {
    this.tty = options.tty ?? Boolean((options.out as { isTTY?: boolean }).isTTY);
    this.now = options.now ?? Date.now;
    this.lastPlain = this.now();
    this.timer = setInterval(() => this.tick(), this.tty ? 500 : 1_000);
    this.timer.unref();
  }

  event(event: RunEvent): void {
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
      this.options.out.write(`[mpd] … still running: ${this.describeRunning()}\n`);
    }
  }

  /** Stops redrawing and clears the status line. */
  stop(): void {
    clearInterval(this.timer);
    this.clearFooter();
  }

  private line(text: string): void {
    this.clearFooter();
    this.options.out.write(`${text}\n`);
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
    this.options.out.write(this.footer);
  }

  private clearFooter(): void {
    if (!this.footer) return;
    this.options.out.write('\r\x1b[K');
    this.footer = '';
  }
}
