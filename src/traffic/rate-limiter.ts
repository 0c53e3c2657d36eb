import { LRUCache } from 'lru-cache';
import { gcraLocal, gcraSettleLocal, interval, type LimitDecision, type LimiterSpec } from './gcra.js';
import { LuaScript, type FallbackFlag, type RedisLink } from './redis-link.js';
import { GCRA_LUA, GCRA_SETTLE_LUA } from './slot-scripts.js';

const CHECK = new LuaScript(GCRA_LUA);
const SETTLE = new LuaScript(GCRA_SETTLE_LUA);

/** Local limiter states kept (LRU): one number per active limiter key. */
const LOCAL_MAX_KEYS = 100_000;

/**
 * Rate limits as GCRA: in Redis (one script, one round trip for every limiter of a request) when
 * it is configured and reachable, else in this process. Requests are never refused because
 * Redis is away: the local limiter decides, announced once by the fallback flag.
 */
export class RateLimiter {
  readonly #link: RedisLink | null;
  readonly #flag: FallbackFlag | null;
  readonly #local: Map<string, number>;

  constructor(link: RedisLink | null, flag: FallbackFlag | null) {
    this.#link = link;
    this.#flag = flag;
    // LRUCache has the Map methods gcraLocal uses; an idle limiter's state is dropped first.
    this.#local = new LRUCache<string, number>({ max: LOCAL_MAX_KEYS }) as unknown as Map<string, number>;
  }

  check(specs: readonly LimiterSpec[]): LimitDecision | Promise<LimitDecision> {
    const link = this.#link;
    if (link === null || !link.ready) {
      if (link !== null) this.#flag?.set(true);
      return gcraLocal(this.#local, specs, Date.now());
    }
    const now = Date.now();
    const args: number[] = [now];
    for (const s of specs) args.push(interval(s), s.windowMs, s.cost);
    return link.run(
      CHECK,
      specs.map((s) => link.prefix + s.key),
      args,
    ).then(
      (reply) => {
        this.#flag?.set(false);
        const r = reply as number[];
        const states = specs.map((_, i) => ({ waitMs: Number(r[1 + i * 2]), usedMs: Number(r[2 + i * 2]) }));
        return { allowed: Number(r[0]) === 1, states };
      },
      (err) => {
        this.#flag?.set(true, err);
        return gcraLocal(this.#local, specs, Date.now());
      },
    );
  }

  /** Charges (or refunds, negative) `delta` units once the real cost is known. */
  settle(spec: LimiterSpec, delta: number): void {
    if (delta === 0) return;
    const link = this.#link;
    if (link === null || !link.ready) {
      gcraSettleLocal(this.#local, spec.key, spec, delta, Date.now());
      return;
    }
    link.run(SETTLE, [link.prefix + spec.key], [Date.now(), interval(spec), spec.windowMs, delta]).catch(() => {
      gcraSettleLocal(this.#local, spec.key, spec, delta, Date.now());
    });
  }
}
