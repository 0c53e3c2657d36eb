import type { RouteState } from './route-state.js';

export interface OutlierOptions {
  /** Consecutive connect failures that eject a route. */
  failuresToEject: number;
  baseMs: number;
  maxMs: number;
}

/**
 * Passive outlier detection (Envoy-style, connect failures only): a route that fails to connect
 * `failuresToEject` times in a row is skipped on this instance for base × 2^(n-1), capped, and
 * returns on its first success. The balancer ignores ejections when every candidate is ejected
 * (panic mode), so ejection never makes a live endpoint unreachable.
 */
export class OutlierDetector {
  readonly #opts: OutlierOptions;

  constructor(opts: OutlierOptions) {
    this.#opts = opts;
  }

  /** Returns true when this failure ejected the route. */
  recordConnectFailure(route: RouteState, now: number): boolean {
    // Already ejected: these are attempts that were under way when it went out (a burst of
    // concurrent requests). They must not eject it again, or one outage would double the
    // ejection once per concurrent request.
    if (route.ejectedUntil > now) return false;
    route.consecutiveFailures++;
    // A route that was ejected and has not succeeded since goes straight back out, for longer.
    if (route.consecutiveFailures < this.#opts.failuresToEject && route.ejections === 0) return false;
    const duration = Math.min(this.#opts.maxMs, this.#opts.baseMs * 2 ** route.ejections);
    route.ejections++;
    route.ejectedUntil = now + duration;
    route.consecutiveFailures = 0;
    return true;
  }

  recordSuccess(route: RouteState): void {
    if (route.consecutiveFailures !== 0) route.consecutiveFailures = 0;
    if (route.ejections !== 0) {
      route.ejections = 0;
      route.ejectedUntil = 0;
    }
  }
}
