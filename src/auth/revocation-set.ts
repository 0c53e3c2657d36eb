import type { RevokedToken } from '../store/store.js';

/**
 * Revoked token ids held in memory on each instance (jti → exp in epoch seconds). Fed by store
 * `revoke` events, rebuilt from `store.listRevoked()` on start and resync; an entry is dropped
 * once its token has expired (plus leeway), since expiry rejects the token by then anyway.
 * Revocations are never undone, so a resync merges into the set rather than replacing it: an
 * event that arrived while the list was being read is not lost.
 */
export class RevocationSet {
  #entries = new Map<string, number>();
  readonly #leewaySeconds: number;

  constructor(leewaySeconds = 30) {
    this.#leewaySeconds = leewaySeconds;
  }

  get size(): number {
    return this.#entries.size;
  }

  has(jti: string): boolean {
    return this.#entries.has(jti);
  }

  add(jti: string, exp: number): void {
    const current = this.#entries.get(jti);
    if (current === undefined || exp > current) this.#entries.set(jti, exp);
  }

  /** Merges a full list read from the store and drops expired entries. */
  merge(list: readonly RevokedToken[], nowSec: number): void {
    const next = new Map<string, number>();
    const horizon = nowSec - this.#leewaySeconds;
    for (const { jti, exp } of list) if (exp > horizon) next.set(jti, exp);
    for (const [jti, exp] of this.#entries) if (exp > horizon && !next.has(jti)) next.set(jti, exp);
    this.#entries = next;
  }

  /** Drops entries whose tokens have expired. */
  sweep(nowSec: number): void {
    const horizon = nowSec - this.#leewaySeconds;
    for (const [jti, exp] of this.#entries) if (exp <= horizon) this.#entries.delete(jti);
  }
}
