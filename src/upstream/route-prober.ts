import type { RouteState } from './route-state.js';

/** An endpoint's `health_check`, in the units the prober uses. */
export interface ProbeConfig {
  /** Path on the route (after the route URL's own path prefix). */
  path: string;
  intervalMs: number;
  timeoutMs: number;
  unhealthyAfter: number;
  healthyAfter: number;
}

/** Told when a route leaves or rejoins rotation, and of every failed probe. */
export interface ProbeListener {
  routeHealthChanged(route: RouteState, healthy: boolean, detail: string): void;
  probeFailed(route: RouteState, detail: string): void;
}

export function sameProbeConfig(a: ProbeConfig, b: ProbeConfig): boolean {
  return a.path === b.path && a.intervalMs === b.intervalMs && a.timeoutMs === b.timeoutMs && a.unhealthyAfter === b.unhealthyAfter && a.healthyAfter === b.healthyAfter;
}

/**
 * The gateway's own active health check of one route: `GET {route url}{path}` every interval
 * (±10 % jitter, first probe at a random point of the first interval so probers started
 * together spread out), with its own timeout. Any 2xx passes. Probes go through the route's
 * own pool, so they speak what traffic speaks (HTTP/1.1, h2c, h2; TLS with UPSTREAM_CA_FILE).
 * `unhealthyAfter` failures in a row take the route out of rotation (`route.probeHealthy`),
 * `healthyAfter` passes in a row bring it back. A probe never overlaps the previous one.
 */
export class RouteProber {
  readonly route: RouteState;
  readonly config: ProbeConfig;
  readonly #listener: ProbeListener;
  readonly #path: string;
  #timer: NodeJS.Timeout | null = null;
  #inFlight: AbortController | null = null;
  #stopped = false;
  #failures = 0;
  #passes = 0;

  constructor(route: RouteState, config: ProbeConfig, listener: ProbeListener) {
    this.route = route;
    this.config = config;
    this.#listener = listener;
    this.#path = route.basePath + config.path;
  }

  start(): void {
    this.#schedule(Math.random() * this.config.intervalMs);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#inFlight?.abort();
    this.#inFlight = null;
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#probe();
    }, delayMs);
    // Probes never keep a stopping process alive.
    this.#timer.unref();
  }

  #probe(): void {
    const abort = new AbortController();
    this.#inFlight = abort;
    const timeoutMs = this.config.timeoutMs;
    // Covers connecting too (the pool's connect timeout may be longer than the probe's).
    const timeout = setTimeout(() => abort.abort(), timeoutMs);
    timeout.unref();
    this.route.pool
      .request({
        path: this.#path,
        method: 'GET',
        headers: { 'user-agent': 'modelgate-health-check' },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: abort.signal,
      })
      .then(
        async ({ statusCode, body }) => {
          await body.dump().catch(() => {});
          return { ok: statusCode >= 200 && statusCode < 300, detail: `status ${statusCode}` };
        },
        (err: { code?: string; message?: string }) => ({
          ok: false,
          detail: abort.signal.aborted ? `no answer in ${timeoutMs} ms` : (err.code ?? err.message ?? 'failed'),
        }),
      )
      .then(({ ok, detail }) => {
        clearTimeout(timeout);
        if (this.#inFlight === abort) this.#inFlight = null;
        if (this.#stopped) return;
        this.#record(ok, detail);
        this.#schedule(this.config.intervalMs * (0.9 + Math.random() * 0.2));
      });
  }

  #record(ok: boolean, detail: string): void {
    const route = this.route;
    if (ok) {
      this.#failures = 0;
      this.#passes++;
      if (!route.probeHealthy && this.#passes >= this.config.healthyAfter) {
        route.probeHealthy = true;
        this.#listener.routeHealthChanged(route, true, detail);
      }
      return;
    }
    this.#passes = 0;
    this.#failures++;
    this.#listener.probeFailed(route, detail);
    if (route.probeHealthy && this.#failures >= this.config.unhealthyAfter) {
      route.probeHealthy = false;
      this.#listener.routeHealthChanged(route, false, detail);
    }
  }
}
