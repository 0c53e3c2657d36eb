import { Readable } from 'node:stream';

/**
 * A request body that can be sent again. It streams up as it arrives (nothing waits for the
 * whole body) and keeps a copy of what went past, up to `maxBytes`, so a request whose
 * upstream reset before answering can be replayed on another route. Past the limit the copy
 * is dropped and the body is no longer replayable (the request then fails as without replay).
 *
 * Each try reads its own `Readable` from `attempt()`: undici destroys a request's body stream
 * when the request fails, and that must not destroy the client's request.
 */
export class ReplayBody {
  readonly #source: Readable;
  readonly #maxBytes: number;
  #chunks: Buffer[] | null = [];
  #size = 0;
  #ended = false;
  #error: Error | null = null;
  #current: AttemptBody | null = null;
  #attempts = 0;

  constructor(source: Readable, maxBytes: number) {
    this.#source = source;
    this.#maxBytes = maxBytes;
    source.on('data', (chunk: Buffer) => this.#onData(chunk));
    source.on('end', () => this.#onEnd());
    source.on('error', (err: Error) => this.#onError(err));
    source.pause();
  }

  /** False once the body outgrew the limit after a first try (its start is gone). */
  get replayable(): boolean {
    return this.#chunks !== null || this.#attempts === 0;
  }

  /**
   * A fresh stream for the next try: the kept bytes, then the rest as it arrives. null when the
   * body cannot be sent again. Detaches the previous try's stream.
   */
  attempt(): Readable | null {
    if (!this.replayable) return null;
    this.#attempts++;
    const previous = this.#current;
    this.#current = null;
    previous?.destroy();
    const body = new AttemptBody(this);
    this.#current = body;
    if (this.#chunks !== null) for (const chunk of this.#chunks) body.push(chunk);
    if (this.#error !== null) body.destroy(this.#error);
    else if (this.#ended) body.push(null);
    return body;
  }

  /** The try's reader wants more. */
  pull(body: AttemptBody): void {
    if (body === this.#current && !this.#ended) this.#source.resume();
  }

  detach(body: AttemptBody): void {
    if (body !== this.#current) return;
    this.#current = null;
    // Nobody reads until the next try: let TCP hold the client back instead of buffering here.
    if (!this.#ended) this.#source.pause();
  }

  #onData(chunk: Buffer): void {
    if (this.#chunks !== null) {
      this.#size += chunk.length;
      if (this.#size > this.#maxBytes) this.#chunks = null;
      else this.#chunks.push(chunk);
    }
    const current = this.#current;
    if (current === null) {
      this.#source.pause();
      return;
    }
    if (!current.push(chunk)) this.#source.pause();
  }

  #onEnd(): void {
    this.#ended = true;
    this.#current?.push(null);
  }

  #onError(err: Error): void {
    this.#error = err;
    this.#current?.destroy(err);
  }
}

function ignoreError(): void {}

class AttemptBody extends Readable {
  readonly #owner: ReplayBody;
  constructor(owner: ReplayBody) {
    super();
    this.#owner = owner;
    // undici listens while the try runs; a try destroyed with an error after it let go (a
    // replaced try, a client that went away) must not become an uncaught 'error'.
    this.on('error', ignoreError);
  }

  override _read(): void {
    this.#owner.pull(this);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#owner.detach(this);
    callback(err);
  }
}
