/**
 * Requests waiting for a slot under `limits.max_in_flight_per_route`: ordered by priority
 * (0-9, higher first), then arrival. Anti-starvation share: every STARVATION_SHARE-th grant goes
 * to the oldest waiter whatever its priority, so under a steady flow of high-priority requests
 * low priorities still get at least 1 in STARVATION_SHARE of the freed slots
 * (docs/traffic-control.md).
 *
 * Ten FIFO buckets with lazy removal: enqueue and dequeue are O(1) amortised; a waiter that
 * leaves early (timeout, client gone) is only marked and skipped later.
 */

export const STARVATION_SHARE = 10;
const PRIORITIES = 10;

export interface Waiter {
  readonly priority: number;
  /** Arrival order, assigned by the queue. */
  seq: number;
  /** Set when the waiter left the queue (granted, timed out, or gone). */
  queued: boolean;
}

class Bucket<T extends Waiter> {
  items: T[] = [];
  head = 0;

  /** First waiter still queued, dropping the ones that left. */
  peek(): T | undefined {
    const items = this.items;
    while (this.head < items.length && !items[this.head].queued) this.head++;
    if (this.head === items.length) {
      if (this.head > 0) {
        this.items = [];
        this.head = 0;
      }
      return undefined;
    }
    // Compact now and then so a long-lived bucket does not keep every waiter it ever held.
    if (this.head > 1024 && this.head * 2 > items.length) {
      this.items = items.slice(this.head);
      this.head = 0;
    }
    return this.items[this.head];
  }
}

export class WaitQueue<T extends Waiter> {
  readonly #buckets: Bucket<T>[] = [];
  #size = 0;
  #seq = 0;
  #grants = 0;

  constructor() {
    for (let i = 0; i < PRIORITIES; i++) this.#buckets.push(new Bucket<T>());
  }

  /** Waiters still queued. */
  get size(): number {
    return this.#size;
  }

  push(waiter: T): void {
    waiter.seq = this.#seq++;
    waiter.queued = true;
    this.#buckets[clampPriority(waiter.priority)].items.push(waiter);
    this.#size++;
  }

  /** Takes a waiter out early; false when it had already left. */
  remove(waiter: T): boolean {
    if (!waiter.queued) return false;
    waiter.queued = false;
    this.#size--;
    return true;
  }

  /** The waiter the next grant goes to, without taking it. */
  peek(): T | undefined {
    if (this.#size === 0) return undefined;
    const oldestTurn = (this.#grants + 1) % STARVATION_SHARE === 0;
    let best: T | undefined;
    for (let p = PRIORITIES - 1; p >= 0; p--) {
      const head = this.#buckets[p].peek();
      if (head === undefined) continue;
      if (!oldestTurn) return head;
      if (best === undefined || head.seq < best.seq) best = head;
    }
    return best;
  }

  /** Takes a waiter that peek() named (it may have left meanwhile: false) and counts the grant. */
  take(waiter: T): boolean {
    if (!this.remove(waiter)) return false;
    this.#grants++;
    return true;
  }

  /** Takes the next waiter (see peek) and counts the grant. */
  shift(): T | undefined {
    const next = this.peek();
    if (next !== undefined) {
      this.remove(next);
      this.#grants++;
    }
    return next;
  }
}

function clampPriority(p: number): number {
  return p < 0 ? 0 : p > 9 ? 9 : p | 0;
}
