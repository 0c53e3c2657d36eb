import type { Candidates, Balancer } from '../upstream/balancer.js';
import type { RouteState } from '../upstream/route-state.js';
import type { FallbackFlag, RedisLink } from './redis-link.js';
import { LuaScript } from './redis-link.js';
import { ACQUIRE_SLOT_LUA } from './slot-scripts.js';

const ACQUIRE = new LuaScript(ACQUIRE_SLOT_LUA);

/** A crashed instance's slots come back within this (DESIGN: 10 s). */
export const LEASE_TTL_MS = 8_000;
export const LEASE_RENEW_MS = 2_000;
/** Routes offered to one acquire script, most preferred first. */
const MAX_KEYS_PER_ACQUIRE = 16;

/** What a slot is held for: the ticket of one request. */
export interface SlotHolder {
  slotRoute: RouteState | null;
  /** Redis lease member; '' for a slot counted locally only. */
  leaseId: string;
  leaseKey: string;
}

/** No usable route at all (the hold queue's business), as opposed to null: every route is full. */
export const NO_ROUTE = undefined;
export type AcquireResult = RouteState | null | undefined;

function usable(r: RouteState, now: number, skipA: RouteState | null, skipB: RouteState | null): boolean {
  return r !== skipA && r !== skipB && !r.isEjected(now);
}

/**
 * Slots under `limits.max_in_flight_per_route`. Alone (no Redis) a slot is a plain counter on
 * the route, taken synchronously without locks. With Redis it is a lease in a sorted set per
 * route (slot-scripts.ts), renewed while the request runs; when Redis is unreachable the
 * counters alone decide (per-instance caps), announced by the fallback flag.
 */
export class SlotManager {
  readonly #link: RedisLink | null;
  readonly #flag: FallbackFlag | null;
  readonly #instance: string;
  readonly #leases = new Map<string, string>();
  #seq = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(link: RedisLink | null, flag: FallbackFlag | null, instanceId: string) {
    this.#link = link;
    this.#flag = flag;
    this.#instance = instanceId;
  }

  get shared(): boolean {
    return this.#link !== null && this.#link.ready;
  }

  /**
   * Takes a slot on a route, preferring the balancer's pick. Synchronous when counting locally.
   */
  acquire(
    holder: SlotHolder,
    endpointId: string,
    cap: number,
    c: Candidates,
    balancer: Balancer,
    now: number,
    skipA: RouteState | null,
    skipB: RouteState | null,
  ): AcquireResult | Promise<AcquireResult> {
    const first = balancer.pick(c, now, skipA, skipB);
    if (first === null) return NO_ROUTE;
    const link = this.#link;
    if (link === null || !link.ready) {
      if (link !== null) this.#flag?.set(true);
      return this.#acquireLocal(holder, first, cap, c, now, skipA, skipB);
    }
    const order: RouteState[] = [first];
    const rest = c.routes.filter((r) => r !== first && usable(r, now, skipA, skipB));
    rest.sort((a, b) => a.slotsHeld - b.slotsHeld);
    for (const r of rest) {
      if (order.length >= MAX_KEYS_PER_ACQUIRE) break;
      order.push(r);
    }
    const keys = order.map((r) => this.keyOf(endpointId, r));
    const member = `${this.#instance}:${++this.#seq}`;
    return link.run(ACQUIRE, keys, [Date.now(), LEASE_TTL_MS, cap, member]).then(
      (reply) => {
        this.#flag?.set(false);
        const i = Number(reply);
        if (!(i > 0)) return null;
        const route = order[i - 1];
        route.slotsHeld++;
        holder.slotRoute = route;
        holder.leaseId = member;
        holder.leaseKey = keys[i - 1];
        this.#leases.set(member, keys[i - 1]);
        this.#startRenewing();
        return route;
      },
      (err) => {
        this.#flag?.set(true, err);
        return this.#acquireLocal(holder, first, cap, c, now, skipA, skipB);
      },
    );
  }

  #acquireLocal(
    holder: SlotHolder,
    first: RouteState,
    cap: number,
    c: Candidates,
    now: number,
    skipA: RouteState | null,
    skipB: RouteState | null,
  ): RouteState | null {
    let route: RouteState | null = first.slotsHeld < cap ? first : null;
    if (route === null) {
      for (const r of c.routes) {
        if (r.slotsHeld < cap && usable(r, now, skipA, skipB) && (route === null || r.slotsHeld < route.slotsHeld)) route = r;
      }
    }
    if (route === null) return null;
    route.slotsHeld++;
    holder.slotRoute = route;
    holder.leaseId = '';
    return route;
  }

  release(holder: SlotHolder): void {
    const route = holder.slotRoute;
    if (route === null) return;
    holder.slotRoute = null;
    route.slotsHeld--;
    if (holder.leaseId !== '') {
      this.#leases.delete(holder.leaseId);
      // Fire and forget: if it is lost, the lease expires by itself.
      this.#link?.redis.zrem(holder.leaseKey, holder.leaseId).catch(() => {});
      holder.leaseId = '';
    }
  }

  keyOf(endpointId: string, route: RouteState): string {
    return `${this.#link?.prefix ?? ''}slots:${endpointId}:${route.id}`;
  }

  #startRenewing(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => this.#renew(), LEASE_RENEW_MS);
    this.#timer.unref();
  }

  #renew(): void {
    const link = this.#link;
    if (this.#leases.size === 0) {
      if (this.#timer !== null) clearInterval(this.#timer);
      this.#timer = null;
      return;
    }
    if (link === null || !link.ready) return;
    const expiry = Date.now() + LEASE_TTL_MS;
    const pipeline = link.redis.pipeline();
    for (const [member, key] of this.#leases) {
      pipeline.zadd(key, 'XX', expiry, member);
      pipeline.pexpire(key, LEASE_TTL_MS * 2);
    }
    pipeline.exec().catch(() => {});
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
