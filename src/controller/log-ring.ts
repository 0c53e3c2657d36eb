/**
 * The last N output lines of one replica, kept across its restarts so the API can show why it
 * crashed. Bounded in lines and line length: a chatty or binary-spewing model server must not
 * grow the gateway's heap.
 */
export const MAX_LINE_CHARS = 4096;

export type LogListener = (line: string) => void;

export class LogRing {
  readonly #capacity: number;
  readonly #lines: string[] = [];
  #start = 0;
  readonly #listeners = new Set<LogListener>();

  constructor(capacity = 500) {
    this.#capacity = Math.max(1, capacity);
  }

  push(line: string): void {
    const text = line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}…` : line;
    if (this.#lines.length < this.#capacity) this.#lines.push(text);
    else {
      this.#lines[this.#start] = text;
      this.#start = (this.#start + 1) % this.#capacity;
    }
    for (const listener of this.#listeners) {
      try {
        listener(text);
      } catch {
        // a listener (e.g. a closed validate stream) must never break the replica
      }
    }
  }

  /** The last `n` lines, oldest first. */
  tail(n = this.#capacity): string[] {
    const ordered = this.#lines.length < this.#capacity ? this.#lines.slice() : [...this.#lines.slice(this.#start), ...this.#lines.slice(0, this.#start)];
    return n >= ordered.length ? ordered : ordered.slice(ordered.length - n);
  }

  subscribe(listener: LogListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/** Splits a byte stream into lines for a LogRing; a line longer than the cap is cut, not buffered. */
export function lineSplitter(onLine: (line: string) => void): { write(chunk: Buffer | string): void; end(): void } {
  let pending = '';
  return {
    write(chunk) {
      pending += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        onLine(pending.slice(0, nl).replace(/\r$/, ''));
        pending = pending.slice(nl + 1);
      }
      if (pending.length > MAX_LINE_CHARS) {
        onLine(pending);
        pending = '';
      }
    },
    end() {
      if (pending !== '') onLine(pending);
      pending = '';
    },
  };
}
