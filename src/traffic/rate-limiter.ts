import { LRUCache } from 'lru-cache';
import { gcraLocal, gcraSettleLocal, type LimitDecision, type LimiterSpec } from './gcra.js';
import type { FallbackFlag } from './redis-link.js';
import type { SharedLimits } from './shared-limits.js';

/** Local limiter states kept (LRU): one number per active limiter key. */
const LOCAL_MAX_KEYS = 100_000;

/** A Map-like LRU of GCRA states (an idle limiter's state is dropped first). */
export function localLimiterState(): Map<string, number> {
  return new LRUCache<string, number>({ max: LOCAL_MAX_KEYS }) as unknown as Map<string, number>;
}

/**
 * Rate limits as GCRA: shared (Redis: one script, one round trip for every limiter of a request;
 * or the cluster primary) when configured and reachable, else in this process. Requests are
 * never refused because the shared side is away: the local limiter decides, announced once by
 * the fallback flag.
 */
export class RateLimiter {
  readonly #shared: SharedLimits | null;
  readonly #flag: FallbackFlag | null;
  // Built on first use: the LRU allocates its arrays for LOCAL_MAX_KEYS up front (~3 MB),
  // and most gateways limit nothing, or limit through Redis.
  #localState: Map<string, number> | null = null;

  constructor(shared: SharedLimits | null, flag: FallbackFlag | null) {
    this.#shared = shared;
    this.#flag = flag;
  }

  get #local(): Map<string, number> {
    return (this.#localState ??= localLimiterState());
  }

  check(specs: readonly LimiterSpec[]): LimitDecision | Promise<LimitDecision> {
    const shared = this.#shared;
    if (shared === null || !shared.ready) {
      if (shared !== null) this.#flag?.set(true);
      return gcraLocal(this.#local, specs, Date.now());
    }
    return shared.checkLimits(specs).then(
      (d) => {
        this.#flag?.set(false);
        return d;
      },
      (err: unknown) => {
        this.#flag?.set(true, err);
        return gcraLocal(this.#local, specs, Date.now());
      },
    );
  }

  /** Charges (or refunds, negative) `delta` units once the real cost is known. */
  settle(spec: LimiterSpec, delta: number): void {
    if (delta === 0) return;
    const shared = this.#shared;
    if (shared === null || !shared.ready) {
      gcraSettleLocal(this.#local, spec.key, spec, delta, Date.now());
      return;
    }
    shared.settleLimit(spec, delta).catch(() => gcraSettleLocal(this.#local, spec.key, spec, delta, Date.now()));
  }
}
