import type { LazyPool } from './pool-registry.js';
import type { Route, RouteProtocol } from '../schema/route-table.js';
import type { RouteProber } from './route-prober.js';

/**
 * The runtime side of one route on this instance: its pool, outstanding requests and passive
 * health. It survives route-table updates that keep the route (same id and URL), so counters
 * and ejections carry over.
 */
export class RouteState {
  readonly id: string;
  readonly url: string;
  /** Identity across table versions (id, URL, connect timeout); see EndpointRuntimeCompiler. */
  readonly key: string;
  /** Path prefix of the route URL without a trailing slash ('' for none). */
  readonly basePath: string;
  readonly pool: LazyPool;
  weight: number;
  status: Route['status'];
  /** Requests sent and not finished (open WebSocket tunnels included). */
  outstanding = 0;
  /** Slots this instance holds under `limits.max_in_flight_per_route` (src/traffic/). */
  slotsHeld = 0;
  /** Open WebSocket tunnels among `outstanding`: they left the pool at their 101. */
  tunnels = 0;
  consecutiveFailures = 0;
  /** Times ejected in a row; reset by a success. */
  ejections = 0;
  ejectedUntil = 0;
  /** Smooth weighted round-robin state. */
  currentWeight = 0;
  /** False while the gateway's own health checks (endpoint `health_check`) keep it out of rotation. */
  probeHealthy = true;
  /** The active health check of this route on this process, when the endpoint has one. */
  prober: RouteProber | null = null;

  /** `pool` is the route's pool, or a function that acquires one for the route's origin and protocol. */
  constructor(route: Route, pool: LazyPool | ((origin: string, protocol: RouteProtocol) => LazyPool), key = RouteState.key(route)) {
    const url = new URL(route.url);
    this.id = route.id;
    this.url = route.url;
    this.key = key;
    this.basePath = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '');
    this.pool = typeof pool === 'function' ? pool(url.origin, route.protocol ?? 'http1') : pool;
    this.weight = route.weight;
    this.status = route.status;
  }

  /**
   * Joined, not concatenated: `join` makes one flat string, where a template literal leaves a
   * tree of cons strings (about four times the memory, kept by every cached route).
   */
  static key(route: Route, connectMs?: number): string {
    const parts: (string | number)[] = [route.id, route.url, route.protocol ?? 'http1'];
    if (connectMs !== undefined) parts.push(connectMs);
    return parts.join('\u0000');
  }

  /** Whether new requests may go here (the table's status and weight, and the gateway's own probes). */
  get takesTraffic(): boolean {
    return this.status === 'healthy' && this.weight > 0 && this.probeHealthy;
  }

  isEjected(now: number): boolean {
    return this.ejectedUntil > now;
  }
}
