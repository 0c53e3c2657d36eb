import { request as httpRequest, type ClientRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
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
 * together spread out), each on a fresh connection with its own timeout. Any 2xx passes.
 * `unhealthyAfter` failures in a row take the route out of rotation (`route.probeHealthy`),
 * `healthyAfter` passes in a row bring it back. A probe never overlaps the previous one.
 */
export class RouteProber {
  readonly route: RouteState;
  readonly config: ProbeConfig;
  readonly #listener: ProbeListener;
  readonly #url: URL;
  #timer: NodeJS.Timeout | null = null;
  #inFlight: ClientRequest | null = null;
  #stopped = false;
  #failures = 0;
  #passes = 0;

  constructor(route: RouteState, config: ProbeConfig, listener: ProbeListener) {
    this.route = route;
    this.config = config;
    this.#listener = listener;
    const base = new URL(route.url);
    this.#url = new URL(route.basePath + config.path, base.origin);
  }

  start(): void {
    this.#schedule(Math.random() * this.config.intervalMs);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#inFlight?.destroy();
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
    let settled = false;
    const done = (ok: boolean, detail: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timeout);
      this.#inFlight = null;
      if (this.#stopped) return;
      this.#record(ok, detail);
      this.#schedule(this.config.intervalMs * (0.9 + Math.random() * 0.2));
    };
    const send = this.#url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(this.#url, { method: 'GET', agent: false, headers: { 'user-agent': 'modelgate-health-check', connection: 'close' } }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      done(status >= 200 && status < 300, `status ${status}`);
      res.on('error', () => {});
    });
    this.#inFlight = req;
    const timeout = setTimeout(() => {
      done(false, `no answer in ${this.config.timeoutMs} ms`);
      req.destroy();
    }, this.config.timeoutMs);
    timeout.unref();
    req.on('error', (err: NodeJS.ErrnoException) => done(false, err.code ?? err.message));
    req.end();
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
