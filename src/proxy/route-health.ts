import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import type { EndpointHealthCheck } from '../schema/route-table.js';
import { RouteProber, sameProbeConfig, type ProbeConfig, type ProbeListener } from '../upstream/route-prober.js';
import type { RouteState } from '../upstream/route-state.js';

export function probeConfigOf(hc: EndpointHealthCheck): ProbeConfig {
  return {
    path: hc.path,
    intervalMs: Math.round(hc.interval_s * 1000),
    timeoutMs: Math.round(hc.timeout_s * 1000),
    unhealthyAfter: hc.unhealthy_after,
    healthyAfter: hc.healthy_after,
  };
}

/** What the route-health tracker needs from the endpoint's current compiled version. */
export interface ProbedEndpoint {
  readonly name: string;
  refreshCandidates(): void;
}

/**
 * The gateway's health checks of one endpoint's routes on this process: starts and stops one
 * prober per route as table versions come and go, and when a route leaves or rejoins rotation
 * rebuilds the current version's candidates, wakes held requests, counts and logs it.
 */
export class EndpointRouteHealth implements ProbeListener {
  /** The version being served (probers outlive versions; candidates belong to one). */
  current: ProbedEndpoint | null = null;

  constructor(
    private readonly label: string,
    private readonly metrics: Metrics,
    private readonly logger: Logger | undefined,
    private readonly onRecovered: (endpoint: ProbedEndpoint) => void,
  ) {}

  /** Gives `route` a prober with `config`, or none (config null); keeps a running one with the same config. */
  sync(route: RouteState, config: ProbeConfig | null): void {
    const running = route.prober;
    if (running !== null && config !== null && sameProbeConfig(running.config, config)) return;
    if (running !== null) this.stop(route);
    if (config === null) return;
    const prober = new RouteProber(route, config, this);
    route.prober = prober;
    this.#gauge(route.probeHealthy).inc();
    prober.start();
  }

  /** Stops the route's prober; the route counts as healthy again for anything that keeps it. */
  stop(route: RouteState): void {
    const prober = route.prober;
    if (prober === null) return;
    prober.stop();
    route.prober = null;
    this.#gauge(route.probeHealthy).dec();
    route.probeHealthy = true;
  }

  routeHealthChanged(route: RouteState, healthy: boolean, detail: string): void {
    this.#gauge(!healthy).dec();
    this.#gauge(healthy).inc();
    const endpoint = this.current;
    const fields = { endpoint: endpoint?.name, route: route.id, url: route.url, detail };
    if (healthy) this.logger?.info(fields, 'route passed its health checks; back in rotation');
    else this.logger?.warn(fields, 'route failed its health checks; out of rotation');
    if (endpoint === null) return;
    endpoint.refreshCandidates();
    if (healthy) this.onRecovered(endpoint);
  }

  probeFailed(route: RouteState, detail: string): void {
    this.metrics.healthCheckFailures.labels(this.label).inc();
    this.logger?.debug({ endpoint: this.current?.name, route: route.id, detail }, 'health check failed');
  }

  #gauge(healthy: boolean) {
    return this.metrics.healthCheckRoutes.labels(this.label, healthy ? 'healthy' : 'unhealthy');
  }
}
