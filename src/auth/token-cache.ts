import { LRUCache } from 'lru-cache';
import type { AuthFailureCode } from './jose-errors.js';
import type { VerifiedClaims } from './verifier.js';

/** What a cache hit needs, flattened so the hot path reads plain fields. */
export interface CachedToken {
  readonly aud: string | readonly string[];
  readonly jti: string | undefined;
  readonly sub: string | undefined;
  /** Epoch ms after which the token is expired, leeway included. */
  readonly expiredAfterMs: number;
  /** Queue priority 0-9 (DEFAULT_PRIORITY when the token names none). */
  readonly priority: number;
  /** Per-minute limits from the token's claims; 0 = none. */
  readonly rpm: number;
  readonly tpm: number;
}

/** Priority of a request whose token names none (and of public endpoints' callers). */
export const DEFAULT_PRIORITY = 5;

export interface TokenCacheOptions {
  /** TOKEN_CACHE_MAX; 0 turns both caches off. */
  max: number;
  leewaySeconds: number;
  /** An entry is dropped after this long even if the token lives longer (memory hygiene only). */
  maxTtlMs?: number;
  /** Bounds of the negative cache. */
  negativeMax?: number;
  negativeMaxBytes?: number;
  /** How long a definite failure (bad signature, expired) is remembered. */
  negativeTtlMs?: number;
  /** How long a failure caused by an unreachable key set is remembered. */
  transientNegativeTtlMs?: number;
}

export const TOKEN_CACHE_DEFAULTS = {
  maxTtlMs: 10 * 60_000,
  negativeMax: 10_000,
  negativeMaxBytes: 16 * 1024 * 1024,
  negativeTtlMs: 5_000,
  transientNegativeTtlMs: 1_000,
} as const;

function negativeEntrySize(_value: AuthFailureCode, key: string): number {
  return key.length + 64;
}

/**
 * Verified tokens keyed by the raw token string (the claims, not the endpoint: `aud` is
 * compared with the current table's id on every hit, so a deleted or recreated endpoint is
 * never served from the cache), and recent failures, so a flood of one bad token costs no crypto.
 * Expiry and revocation are the checker's job on every hit; the LRU ttl only frees memory.
 */
export class TokenCache {
  // Both LRUs are built on first use: lru-cache allocates its arrays for `max` entries up
  // front (about 4 MB for the default 100,000), which a gateway serving only public endpoints
  // never needs.
  #verified: LRUCache<string, CachedToken> | null = null;
  #failed: LRUCache<string, AuthFailureCode> | null = null;
  readonly #max: number;
  readonly #negativeMax: number;
  readonly #negativeMaxBytes: number;
  readonly #leewayMs: number;
  readonly #maxTtlMs: number;
  readonly #negativeTtlMs: number;
  readonly #transientNegativeTtlMs: number;

  constructor(opts: TokenCacheOptions) {
    this.#leewayMs = opts.leewaySeconds * 1000;
    this.#maxTtlMs = opts.maxTtlMs ?? TOKEN_CACHE_DEFAULTS.maxTtlMs;
    this.#negativeTtlMs = opts.negativeTtlMs ?? TOKEN_CACHE_DEFAULTS.negativeTtlMs;
    this.#transientNegativeTtlMs = opts.transientNegativeTtlMs ?? TOKEN_CACHE_DEFAULTS.transientNegativeTtlMs;
    this.#max = opts.max;
    this.#negativeMax = Math.min(opts.negativeMax ?? TOKEN_CACHE_DEFAULTS.negativeMax, Math.max(opts.max, 1));
    this.#negativeMaxBytes = opts.negativeMaxBytes ?? TOKEN_CACHE_DEFAULTS.negativeMaxBytes;
  }

  #verifiedCache(): LRUCache<string, CachedToken> {
    return (this.#verified ??= new LRUCache<string, CachedToken>({ max: this.#max, ttl: this.#maxTtlMs, updateAgeOnGet: false }));
  }

  #failedCache(): LRUCache<string, AuthFailureCode> {
    return (this.#failed ??= new LRUCache<string, AuthFailureCode>({
      max: this.#negativeMax,
      maxSize: this.#negativeMaxBytes,
      sizeCalculation: negativeEntrySize,
      ttl: this.#negativeTtlMs,
    }));
  }

  get size(): number {
    return this.#verified?.size ?? 0;
  }

  get(token: string): CachedToken | undefined {
    return this.#verified === null ? undefined : this.#verified.get(token);
  }

  /** Stores verified claims and returns the entry (also usable when caching is off). */
  remember(token: string, claims: VerifiedClaims, nowMs: number): CachedToken {
    const entry: CachedToken = {
      aud: claims.aud,
      jti: claims.jti,
      sub: claims.sub,
      expiredAfterMs: claims.exp * 1000 + this.#leewayMs,
      priority: claims.priority ?? DEFAULT_PRIORITY,
      rpm: claims.rpm ?? 0,
      tpm: claims.tpm ?? 0,
    };
    const ttl = Math.min(entry.expiredAfterMs - nowMs, this.#maxTtlMs);
    if (this.#max > 0 && ttl > 0) this.#verifiedCache().set(token, entry, { ttl });
    return entry;
  }

  getFailure(token: string): AuthFailureCode | undefined {
    return this.#failed === null ? undefined : this.#failed.get(token);
  }

  rememberFailure(token: string, code: AuthFailureCode, transient: boolean): void {
    if (this.#max > 0) this.#failedCache().set(token, code, { ttl: transient ? this.#transientNegativeTtlMs : this.#negativeTtlMs });
  }

  clear(): void {
    this.#verified?.clear();
    this.#failed?.clear();
  }
}
