import { gcraLocal, gcraSettleLocal, type LimitDecision, type LimiterSpec, type TatStore } from './gcra.js';
import type { FallbackFlag } from './redis-link.js';
import type { SharedLimits } from './shared-limits.js';

/** Local limiter states kept (LRU): one number per active limiter key. */
const LOCAL_MAX_KEYS = 100_000;

/**
 * Bounded GCRA states in two generations of plain Maps: a state used since the last turnover
 * stays, one idle for a whole generation is dropped. Cheaper per request than an LRU's list
 * upkeep; what is forgotten is the same kind (idle limiters, whose state has run out anyway).
 */
export class RecentMap implements TatStore {
  #young = new Map<string, number>();
  #old = new Map<string, number>();
  readonly #generation: number;

  constructor(max: number) {
    this.#generation = Math.max(1, Math.floor(max / 2));
  }

  get size(): number {
    return this.#young.size + this.#old.size;
  }

  get(key: string): number | undefined {
    const v = this.#young.get(key);
    if (v !== undefined || this.#old.size === 0) return v;
    const old = this.#old.get(key);
    // Used again: it moves to the young generation (a refused limiter must not be forgotten).
    if (old !== undefined) this.set(key, old);
    return old;
  }

  set(key: string, tat: number): this {
    const young = this.#young;
    if (!young.has(key)) {
      this.#old.delete(key);
      if (young.size >= this.#generation) {
        this.#old = young;
        this.#young = new Map();
      }
    }
    this.#young.set(key, tat);
    return this;
  }

  delete(key: string): boolean {
    const a = this.#young.delete(key);
    const b = this.#old.delete(key);
    return a || b;
  }
}

export function localLimiterState(): RecentMap {
  return new RecentMap(LOCAL_MAX_KEYS);
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
  // Built on first use: most gateways limit nothing, or limit through Redis.
  #localState: RecentMap | null = null;

  constructor(shared: SharedLimits | null, flag: FallbackFlag | null) {
    this.#shared = shared;
    this.#flag = flag;
  }

  get #local(): RecentMap {
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
