import type { RouteState } from './route-state.js';

/**
 * The routes an endpoint may send new requests to (status healthy, weight > 0), with the
 * precomputed cumulative weights the weighted draws need.
 */
export class Candidates {
  readonly routes: RouteState[];
  /** Running weight sums for the weighted draw; null when every weight is equal (the common case). */
  readonly cumulative: Float64Array | null;
  readonly totalWeight: number;
  readonly uniform: boolean;

  constructor(routes: RouteState[]) {
    this.routes = routes;
    let total = 0;
    let uniform = true;
    for (let i = 0; i < routes.length; i++) {
      total += routes[i].weight;
      if (routes[i].weight !== routes[0].weight) uniform = false;
    }
    this.totalWeight = total;
    this.uniform = uniform;
    if (uniform) {
      this.cumulative = null;
    } else {
      const cumulative = new Float64Array(routes.length);
      let sum = 0;
      for (let i = 0; i < routes.length; i++) cumulative[i] = sum += routes[i].weight;
      this.cumulative = cumulative;
    }
  }

  get size(): number {
    return this.routes.length;
  }

  /** A weighted random index. */
  draw(): number {
    const n = this.routes.length;
    const cumulative = this.cumulative;
    if (cumulative === null) return (Math.random() * n) | 0;
    const r = Math.random() * this.totalWeight;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid] > r) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

export interface Balancer {
  /**
   * Picks a route for a new request, skipping `skipA`/`skipB` (routes this request already
   * failed on) and ejected routes; ignores ejection when nothing else is left (panic mode).
   */
  pick(c: Candidates, now: number, skipA: RouteState | null, skipB: RouteState | null): RouteState | null;
}

function usable(r: RouteState, now: number, skipA: RouteState | null, skipB: RouteState | null, ignoreEjection: boolean): boolean {
  return r !== skipA && r !== skipB && (ignoreEjection || !r.isEjected(now));
}

/** Weighted power of two choices on outstanding requests: the default (LLM requests vary a lot in length). */
export const P2C_BALANCER: Balancer = {
  pick(c, now, skipA, skipB) {
    const n = c.routes.length;
    if (n === 0) return null;
    if (n === 1) {
      const only = c.routes[0];
      return only === skipA || only === skipB ? null : only;
    }
    for (let pass = 0; pass < 2; pass++) {
      const ignoreEjection = pass === 1;
      let a: RouteState | null = null;
      let b: RouteState | null = null;
      for (let tries = 0; tries < 4 && b === null; tries++) {
        const r = c.routes[c.draw()];
        if (!usable(r, now, skipA, skipB, ignoreEjection)) continue;
        if (a === null) a = r;
        else if (r !== a) b = r;
      }
      if (a === null) {
        // Random draws kept hitting skipped routes: fall back to a scan.
        for (let i = 0; i < n; i++) {
          const r = c.routes[i];
          if (usable(r, now, skipA, skipB, ignoreEjection)) {
            a = r;
            break;
          }
        }
      }
      if (a === null) continue;
      if (b === null) return a;
      // Lower outstanding per unit of weight wins; cross-multiplied to avoid division.
      return a.outstanding * b.weight <= b.outstanding * a.weight ? a : b;
    }
    return null;
  },
};

/** Smooth weighted round-robin (nginx's algorithm): deterministic spread by weight. */
export const ROUND_ROBIN_BALANCER: Balancer = {
  pick(c, now, skipA, skipB) {
    for (let pass = 0; pass < 2; pass++) {
      const ignoreEjection = pass === 1;
      let best: RouteState | null = null;
      let total = 0;
      for (let i = 0; i < c.routes.length; i++) {
        const r = c.routes[i];
        if (!usable(r, now, skipA, skipB, ignoreEjection)) continue;
        r.currentWeight += r.weight;
        total += r.weight;
        if (best === null || r.currentWeight > best.currentWeight) best = r;
      }
      if (best !== null) {
        best.currentWeight -= total;
        return best;
      }
    }
    return null;
  },
};
