import type { LimitDecision, LimiterSpec } from './gcra.js';
import { interval } from './gcra.js';
import { LuaScript, type RedisLink } from './redis-link.js';
import { ACQUIRE_SLOT_LUA, GCRA_LUA, GCRA_SETTLE_LUA } from './slot-scripts.js';

const ACQUIRE = new LuaScript(ACQUIRE_SLOT_LUA);
const CHECK = new LuaScript(GCRA_LUA);
const SETTLE = new LuaScript(GCRA_SETTLE_LUA);

/**
 * Where slots and rate limits are counted when several processes share them: Redis (every
 * instance), or the cluster primary over IPC (WORKERS > 1 on the embedded store). Both answer the
 * same operations; when `ready` is false or a call fails, callers count locally instead.
 */
export interface SharedLimits {
  readonly ready: boolean;
  /** Key prefix of slot and limiter keys. */
  readonly prefix: string;
  /** Leases exist only until renewed (Redis); the primary frees a dead worker's slots itself. */
  readonly leasesExpire: boolean;
  /** Takes a slot on the first key with fewer than `cap` holders: its 1-based index, or 0. */
  acquireSlot(keys: string[], cap: number, member: string, ttlMs: number): Promise<number>;
  releaseSlot(key: string, member: string): void;
  renewSlots(leases: ReadonlyMap<string, string>, ttlMs: number): void;
  checkLimits(specs: readonly LimiterSpec[]): Promise<LimitDecision>;
  settleLimit(spec: LimiterSpec, delta: number): Promise<void>;
}

/** The Lua scripts of slot-scripts.ts over the traffic Redis connection. */
export class RedisSharedLimits implements SharedLimits {
  readonly leasesExpire = true;
  constructor(private readonly link: RedisLink) {}

  get ready(): boolean {
    return this.link.ready;
  }

  get prefix(): string {
    return this.link.prefix;
  }

  async acquireSlot(keys: string[], cap: number, member: string, ttlMs: number): Promise<number> {
    return Number(await this.link.run(ACQUIRE, keys, [Date.now(), ttlMs, cap, member]));
  }

  releaseSlot(key: string, member: string): void {
    // Fire and forget: if it is lost, the lease expires by itself.
    this.link.redis.zrem(key, member).catch(() => {});
  }

  renewSlots(leases: ReadonlyMap<string, string>, ttlMs: number): void {
    const expiry = Date.now() + ttlMs;
    const pipeline = this.link.redis.pipeline();
    for (const [member, key] of leases) {
      pipeline.zadd(key, 'XX', expiry, member);
      pipeline.pexpire(key, ttlMs * 2);
    }
    pipeline.exec().catch(() => {});
  }

  async checkLimits(specs: readonly LimiterSpec[]): Promise<LimitDecision> {
    const now = Date.now();
    const args: number[] = [now];
    for (const s of specs) args.push(interval(s), s.windowMs, s.cost);
    const r = (await this.link.run(
      CHECK,
      specs.map((s) => this.link.prefix + s.key),
      args,
    )) as number[];
    return { allowed: Number(r[0]) === 1, states: specs.map((_, i) => ({ waitMs: Number(r[1 + i * 2]) / 1000, usedMs: Number(r[2 + i * 2]) / 1000 })) };
  }

  async settleLimit(spec: LimiterSpec, delta: number): Promise<void> {
    await this.link.run(SETTLE, [this.link.prefix + spec.key], [Date.now(), interval(spec), spec.windowMs, delta]);
  }
}
