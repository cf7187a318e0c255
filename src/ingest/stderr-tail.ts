/** Lines kept, and the longest line kept (a newline-less run is cut and flushed at it). */
const LINES = 20;
const LINE_CHARS = 2000;

/**
 * The last lines of a child's stderr, each passed through `redact` before it is kept. A line
 * is redacted only once whole: a URL split across two reads would otherwise slip through in
 * halves. `end()` keeps a last line that had no newline.
 *
 * @example
 *   const tail = new StderrTail(redactCredentials);
 *   child.stderr.setEncoding('utf8').on('data', (t) => tail.push(t));
 *   child.on('close', () => log.warn({ stderr: tail.lines(5) }, 'exited'));
 */
export class StderrTail {
  private readonly kept: string[] = [];
  private partial = '';

  constructor(private readonly redact: (line: string) => string) {}

  push(text: string): void {
    const lines = (this.partial + text).split(/\r\n|\r|\n/);
    this.partial = lines.pop() ?? '';
    if (this.partial.length > LINE_CHARS) {
      lines.push(this.partial);
      this.partial = '';
    }
    for (const line of lines) this.keep(line);
  }

  /** The child's stream closed: keeps the unfinished line, and starts clean for the next child. */
  end(): void {
    this.keep(this.partial);
    this.partial = '';
  }

  /** The newest `count` lines (all kept lines by default), oldest first. */
  lines(count = LINES): string[] {
    return this.kept.slice(-count);
  }

  private keep(line: string): void {
    if (!line.trim()) return;
    this.kept.push(this.redact(line).slice(0, LINE_CHARS));
    if (this.kept.length > LINES) this.kept.shift();
  }
}
