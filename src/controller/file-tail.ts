import { open, type FileHandle } from 'node:fs/promises';
import { lineSplitter } from './log-ring.js';

/**
 * Follows a replica's output file. Replicas write to a file rather than a pipe so that they
 * outlive the gateway that started them (a pipe whose reader died turns every log line into
 * EPIPE); the controller that leads, first or adopting, reads the file from where it stands.
 */
export class FileTail {
  readonly #path: string;
  readonly #split: ReturnType<typeof lineSplitter>;
  #position: number;
  #timer: NodeJS.Timeout | undefined;
  #reading: Promise<void> | null = null;

  constructor(path: string, onLine: (line: string) => void, opts: { fromEnd?: number; intervalMs?: number } = {}) {
    this.#path = path;
    this.#split = lineSplitter(onLine);
    this.#position = opts.fromEnd ?? 0;
    this.#timer = setInterval(() => void this.poll(), opts.intervalMs ?? 250);
    this.#timer.unref();
  }

  poll(): Promise<void> {
    this.#reading ??= this.#read().finally(() => (this.#reading = null));
    return this.#reading;
  }

  async #read(): Promise<void> {
    let file: FileHandle | undefined;
    try {
      file = await open(this.#path, 'r');
      const buffer = Buffer.allocUnsafe(64 * 1024);
      for (;;) {
        const { bytesRead } = await file.read(buffer, 0, buffer.length, this.#position);
        if (bytesRead === 0) break;
        this.#position += bytesRead;
        this.#split.write(buffer.subarray(0, bytesRead));
      }
    } catch {
      // not there yet, or removed with the replica's directory
    } finally {
      await file?.close().catch(() => undefined);
    }
  }

  /** Reads what is left and stops. */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    // A read in progress may have stopped short of the last bytes: read once more after it.
    await this.#reading;
    await this.poll();
    this.#split.end();
  }
}
