import type { Logger } from '../obs/logger.js';
import type { Store } from '../store/store.js';
import { MINUTE, type UsageIncrement } from '../store/usage.js';

/** Increments kept while the store is away; past this the oldest minute's data is dropped (and logged). */
const MAX_PENDING = 100_000;

/**
 * Sums metered usage in memory per (endpoint, minute, token, sub) and writes it to the store
 * once a second: one store write per second per instance, not one per request. A failed write
 * is kept and retried, so a store outage delays usage but does not lose it (within MAX_PENDING).
 */
export class UsageRecorder {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #onFailure: () => void;
  #pending = new Map<string, UsageIncrement>();
  /**
   * The increment each (endpoint, token) added to last, found with two lookups of strings the
   * caller already holds (hashes cached) instead of building a composite key per request. Valid
   * for the current batch only: cleared whenever #pending is handed to the store.
   */
  readonly #recent = new Map<string, Map<string, UsageIncrement>>();
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> | null = null;
  #warned = false;

  constructor(store: Store, logger: Logger, onFailure: () => void, private readonly intervalMs = 1000) {
    this.#store = store;
    this.#logger = logger;
    this.#onFailure = onFailure;
  }

  record(endpoint: string, token: string, sub: string, prompt: number, completion: number, nowMs: number): void {
    const minute = Math.floor(nowMs / MINUTE);
    let byToken = this.#recent.get(endpoint);
    let inc = byToken?.get(token);
    if (inc === undefined || inc.minute !== minute || inc.sub !== sub) {
      inc = this.#incrementFor(endpoint, minute, token, sub);
      if (byToken === undefined) this.#recent.set(endpoint, (byToken = new Map()));
      byToken.set(token, inc);
    }
    inc.prompt_tokens += prompt;
    inc.completion_tokens += completion;
    inc.requests++;
    if (this.#timer === null) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        void this.flush();
      }, this.intervalMs);
      this.#timer.unref();
    }
  }

  #incrementFor(endpoint: string, minute: number, token: string, sub: string): UsageIncrement {
    const key = `${endpoint}\u0000${minute}\u0000${token}\u0000${sub}`;
    let inc = this.#pending.get(key);
    if (inc === undefined) {
      if (this.#pending.size >= MAX_PENDING) this.#dropOldest();
      inc = { endpoint, minute, token, sub, prompt_tokens: 0, completion_tokens: 0, requests: 0 };
      this.#pending.set(key, inc);
    }
    return inc;
  }

  #dropOldest(): void {
    // The dropped increment may be one #recent points at: forget them all (rebuilt on use).
    this.#recent.clear();
    const first = this.#pending.keys().next();
    if (!first.done) this.#pending.delete(first.value);
    if (!this.#warned) {
      this.#warned = true;
      this.#logger.error('metered usage is piling up while the store is unreachable; the oldest is being dropped');
    }
  }

  /** Writes what is pending; resolves when written (or kept for the next try). */
  flush(): Promise<void> {
    if (this.#flushing !== null) return this.#flushing.then(() => this.flush());
    if (this.#pending.size === 0) return Promise.resolve();
    const batch = this.#pending;
    this.#pending = new Map();
    this.#recent.clear();
    this.#flushing = this.#store
      .addUsage([...batch.values()])
      .then(
        () => {
          this.#warned = false;
        },
        (err: unknown) => {
          this.#onFailure();
          this.#logger.warn({ err_message: err instanceof Error ? err.message : String(err), increments: batch.size }, 'cannot write metered usage yet; will retry');
          // Put the batch back in front of what arrived meanwhile.
          for (const [key, inc] of this.#pending) {
            const old = batch.get(key);
            if (old === undefined) batch.set(key, inc);
            else {
              old.prompt_tokens += inc.prompt_tokens;
              old.completion_tokens += inc.completion_tokens;
              old.requests += inc.requests;
            }
          }
          this.#pending = batch;
          // Some increments #recent points at were merged into the batch's own: start afresh.
          this.#recent.clear();
          if (this.#timer === null) {
            this.#timer = setTimeout(() => {
              this.#timer = null;
              void this.flush();
            }, Math.max(this.intervalMs, 2000));
            this.#timer.unref();
          }
        },
      )
      .finally(() => {
        this.#flushing = null;
      });
    return this.#flushing;
  }

  async stop(): Promise<void> {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.flush();
  }
}
