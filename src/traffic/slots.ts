import type { Candidates, Balancer } from '../upstream/balancer.js';
import type { RouteState } from '../upstream/route-state.js';
import type { FallbackFlag } from './redis-link.js';
import type { SharedLimits } from './shared-limits.js';

/** A crashed instance's slots come back within this (DESIGN: 10 s). */
export const LEASE_TTL_MS = 8_000;
export const LEASE_RENEW_MS = 2_000;
/** Routes offered to one acquire, most preferred first. */
const MAX_KEYS_PER_ACQUIRE = 16;

/** What a slot is held for: the ticket of one request. */
export interface SlotHolder {
  slotRoute: RouteState | null;
  /** Shared lease member; '' for a slot counted locally only. */
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
 * Slots under `limits.max_in_flight_per_route`. Alone (no Redis, one process) a slot is a plain
 * counter on the route, taken synchronously without locks. Shared (Redis, or the cluster primary
 * for WORKERS > 1) it is a lease held in a set per route, renewed while the request runs; when
 * the shared side is unreachable the counters alone decide (per-instance caps), announced by the
 * fallback flag.
 */
export class SlotManager {
  readonly #shared: SharedLimits | null;
  readonly #flag: FallbackFlag | null;
  readonly #instance: string;
  readonly #leases = new Map<string, string>();
  #seq = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(shared: SharedLimits | null, flag: FallbackFlag | null, instanceId: string) {
    this.#shared = shared;
    this.#flag = flag;
    this.#instance = instanceId;
  }

  /** Slots are counted elsewhere too: queued requests must poll for slots freed there. */
  get shared(): boolean {
    return this.#shared !== null && this.#shared.ready;
  }

  /** Takes a slot on a route, preferring the balancer's pick. Synchronous when counting locally. */
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
    const shared = this.#shared;
    if (shared === null || !shared.ready) {
      if (shared !== null) this.#flag?.set(true);
      return this.#acquireLocal(holder, first, cap, c, now, skipA, skipB);
    }
    const order: RouteState[] = [first];
    const rest = c.routes.filter((r) => r !== first && usable(r, now, skipA, skipB));
    rest.sort((a, b) => a.slotsHeld - b.slotsHeld);
    for (const r of rest) {
      if (order.length >= MAX_KEYS_PER_ACQUIRE) break;
      order.push(r);
    }
    const keys = order.map((r) => `${shared.prefix}slots:${endpointId}:${r.id}`);
    const member = `${this.#instance}:${++this.#seq}`;
    return shared.acquireSlot(keys, cap, member, LEASE_TTL_MS).then(
      (i) => {
        this.#flag?.set(false);
        if (!(i > 0)) return null;
        const route = order[i - 1];
        route.slotsHeld++;
        holder.slotRoute = route;
        holder.leaseId = member;
        holder.leaseKey = keys[i - 1];
        this.#leases.set(member, keys[i - 1]);
        if (shared.leasesExpire) this.#startRenewing();
        return route;
      },
      (err: unknown) => {
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
      this.#shared?.releaseSlot(holder.leaseKey, holder.leaseId);
      holder.leaseId = '';
    }
  }

  #startRenewing(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => this.#renew(), LEASE_RENEW_MS);
    this.#timer.unref();
  }

  #renew(): void {
    const shared = this.#shared;
    if (this.#leases.size === 0) {
      if (this.#timer !== null) clearInterval(this.#timer);
      this.#timer = null;
      return;
    }
    if (shared !== null && shared.ready) shared.renewSlots(this.#leases, LEASE_TTL_MS);
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
